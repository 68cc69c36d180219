"""The cloak track: hull projections against exact references, crafting's known answers, the protocol's
ranks, the real-data layout, and the whole track end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from decobench.cloaks.craft import CraftSettings, apply_mask, craft_masks
from decobench.cloaks.data import from_folder
from decobench.cloaks.hull import affine_coefficients, convex_coefficients
from decobench.cloaks.protocol import hits
from decobench.cli.main import main
from decobench.data.base import DatasetError


def _unit(*shape, seed=0):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_convex_coefficients_match_scipy_on_the_simplex():
    from scipy.optimize import minimize

    C, a = _unit(3, 10, 16).double(), _unit(3, 4, 16, seed=1).double()
    alpha = convex_coefficients(C, a)
    assert torch.allclose(alpha.sum(-1), torch.ones(3, 4, dtype=alpha.dtype)) and (alpha >= 0).all()
    for b in range(3):
        for m in range(4):
            F, f = C[b].T.numpy(), a[b, m].numpy()
            ref = minimize(lambda x: np.sum((F @ x - f) ** 2), np.full(10, 0.1), method="SLSQP",
                           bounds=[(0, 1)] * 10, constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                           options={"ftol": 1e-14, "maxiter": 500})
            assert np.sum((F @ alpha[b, m].numpy() - f) ** 2) <= ref.fun + 1e-9


def test_a_point_inside_the_convex_hull_projects_onto_itself():
    C = _unit(1, 10, 16).double()
    w = torch.rand(1, 2, 10, dtype=torch.float64)
    w /= w.sum(-1, keepdim=True)
    inside = w @ C
    assert torch.allclose(convex_coefficients(C, inside) @ C, inside, atol=1e-6)


def test_affine_projection_is_orthogonal_to_the_hull():
    C, a = _unit(2, 10, 32).double(), _unit(2, 5, 32, seed=3).double()
    alpha = affine_coefficients(C, a)
    assert torch.allclose(alpha.sum(-1), torch.ones(2, 5, dtype=alpha.dtype))
    residual = a - alpha @ C                               # [2, 5, 32]
    directions = C - C.mean(1, keepdim=True)               # the hull's directions
    assert (residual @ directions.transpose(1, 2)).abs().max() < 1e-9


class Tiny(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8 * 7 * 7, 12)

    def embed_tensor(self, x):
        return torch.nn.functional.normalize(self.fc(self.conv(x * 2 - 1).relu().flatten(1)), dim=1)


IMAGES = torch.rand(4, 5, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_fi_uap_plus_and_the_class_centre_give_the_same_masks():
    """Their gradients differ by a positive factor (OPOM's class-centre distance = 1 + |mu|^2 - 2<a, mu>), so
    sign steps give the same masks: a known answer of the objectives."""
    a = craft_masks(IMAGES, Tiny(), CraftSettings("fi_uap_plus", iterations=4), seed=1)
    b = craft_masks(IMAGES, Tiny(), CraftSettings("centre", iterations=4), seed=1)
    assert torch.equal(a, b)


@pytest.mark.parametrize("settings", [CraftSettings("fi_uap"), CraftSettings("convex", iterations=6, centre_steps=2),
                                      CraftSettings("affine", iterations=4), CraftSettings("fi_uap", ga=True, k=1),
                                      CraftSettings("convex", ga=True, k=1, iterations=3, momentum=1.0, dropout=0.1)])
def test_masks_stay_in_budget_and_push_features_away(settings):
    net = Tiny()
    masks = craft_masks(IMAGES, net, settings, seed=0)
    assert masks.shape == (4, 3, 16, 16) and masks.abs().max() <= 8 / 255 + 1e-7
    with torch.no_grad():
        clean = net.embed_tensor(IMAGES.flatten(0, 1))
        cloaked = net.embed_tensor((IMAGES + masks[:, None]).clamp(0, 1).flatten(0, 1))
        noise = net.embed_tensor((IMAGES + (torch.rand_like(masks) * 2 - 1)[:, None] * 8 / 255).clamp(0, 1).flatten(0, 1))
    cos = lambda x: (x * clean).sum(1).mean()  # noqa: E731
    assert cos(cloaked) < cos(noise) - 0.01


def test_a_mask_does_not_depend_on_the_identities_batched_with_it():
    s = CraftSettings("convex", iterations=3, centre_steps=1)
    whole = craft_masks(IMAGES, Tiny(), s, seed=2)
    one_by_one = craft_masks(IMAGES, Tiny(), CraftSettings("convex", iterations=3, centre_steps=1, batch_identities=1), 2)
    assert torch.allclose(whole, one_by_one, atol=1e-6)
    assert not torch.equal(whole, craft_masks(IMAGES, Tiny(), s, seed=3))


def test_ga_costs_k_times_n_gradients_per_outer_step():
    assert CraftSettings("fi_uap", ga=True, k=4).gradients_per_identity(10) == 640
    assert CraftSettings("fi_uap").gradients_per_identity(10) == 160


def test_cloaked_images_are_rounded_not_truncated():
    images = np.full((1, 1, 2, 2, 3), 100, np.uint8)
    masks = torch.zeros(1, 3, 2, 2)
    masks[0, 0] = 0.6 / 255   # rounds up to 101 (truncation would keep 100)
    masks[0, 1] = -0.6 / 255  # rounds down to 99
    masks[0, 2] = 8 / 255
    out = apply_mask(images, masks)
    assert out[0, 0, 0, 0].tolist() == [101, 99, 108]


def test_the_protocol_counts_ties_against_the_cloak():
    e = torch.eye(4)
    probe = clean = torch.stack([e[:2], e[2:]])  # two people, two photos each, orthogonal features
    dis = torch.zeros(3, 4)
    # mates at cosine 0 tie with all 3 distractors: rank 3, a miss at 1 and a hit at 5
    assert hits(probe, clean, dis).tolist() == [[0.0, 1.0], [0.0, 1.0]]
    clean_same = torch.stack([e[[0, 0]], e[[2, 2]]])
    assert hits(clean_same, clean_same, dis).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    dis = e[[0]]  # a distractor equal to person 0's photos beats nothing but ties: against
    assert hits(clean_same, clean_same, dis)[:, 0].tolist() == [0.0, 1.0]


def _layout(root, people=2, per=15, distractors=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    for p in range(people):
        d = root / "identities" / f"person{p}"
        d.mkdir(parents=True)
        for i in range(per):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(d / f"{i:02d}.png")
    (root / "other").mkdir()
    for i in range(distractors):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "other" / f"{i}.png")
    (root / "distractors.txt").write_text("".join(f"other/{i}.png\n" for i in range(distractors)))


def test_the_real_layout_loads_and_its_faults_are_clear(tmp_path):
    _layout(tmp_path)
    data = from_folder(tmp_path, size=16)
    assert data.craft.shape == (2, 10, 16, 16, 3) and data.test.shape == (2, 5, 16, 16, 3)
    assert data.distractors.shape == (3, 16, 16, 3) and data.identities == ["person0", "person1"]
    (tmp_path / "identities" / "person1" / "14.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read image"):
        from_folder(tmp_path, size=16)
    (tmp_path / "identities" / "person1" / "14.png").unlink()
    with pytest.raises(DatasetError, match="has 14 images"):
        from_folder(tmp_path, size=16)
    with pytest.raises(DatasetError, match="no identities/ folder"):
        from_folder(tmp_path / "other")


def test_bad_cloak_settings_exit_2(capsys):
    assert main(["run", "--method", "fi_uap", "--track", "cloak", "--set", "method.surrogate=dlib"]) == 2
    assert main(["run", "--method", "fi_uap", "--track", "cloak", "--set", "cloak.colour=1"]) == 2
    assert main(["run", "--method", "fi_uap", "--track", "data", "--setup", "A"]) == 2
    assert main(["run", "--method", "ce", "--track", "data"]) == 2
    err = capsys.readouterr().err
    assert "differentiable zoo model" in err and "cloak.colour" in err and "cloak track(s), not data" in err
    assert "--setup is required" in err


def test_the_cloak_track_runs_end_to_end(tmp_path):
    """A white-box cloak protects; black-box targets are reported beside it; the board and Table 1 read it."""
    from decobench.results.cloak_table import table1
    from decobench.results.leaderboard import collect, render
    from decobench.results.validate import file_problems

    args = ["run", "--method", "opom_convex", "--track", "cloak", "--profile", "quick", "--out", str(tmp_path),
            "--set", "cloak.identities=12", "--set", "cloak.distractors=300",
            "--set", "cloak.targets=resnet-arcface,senet-arcface", "--device", "cpu"]  # cpu: untagged folder
    assert main(args) == 0
    (path,) = list(tmp_path.rglob("result.json"))
    from decobench.suite.grid import expand
    from decobench.suite.run import cell_dir

    (cell,) = expand({"profile": "quick", "seeds": [0], "block": [{"track": "cloak", "methods": ["opom_convex"], "set": {
        "cloak.identities": 12, "cloak.distractors": 300, "cloak.targets": "resnet-arcface,senet-arcface"}}]})
    assert cell_dir(cell, tmp_path) == path.parent  # the suite finds the run where decobench run wrote it
    r = json.loads(path.read_text())
    m, ref = r["evaluations"][0]["metrics"], r["evaluations"][0]["reference"]["real_source"]
    assert m["privacy_fr_top1_whitebox"]["value"] < ref["privacy_fr_top1_whitebox"]["value"] - 0.5
    assert set(r["evaluations"][0]["attack_info"]["fr_protection"]["targets"]) == {"resnet-arcface", "senet-arcface"}
    assert r["evaluations"][0]["attack_info"]["fr_protection"]["max_pixel_change"] <= 8
    assert 25 < m["utility_psnr"]["value"] < 60
    assert [p for p in file_problems(r) if not p.startswith("decobench_commit")] == []
    results = collect(tmp_path)
    assert "Cloak track, Privacy-Commons protocol" in render(results, [0])
    assert "| resnet-arcface | opom_convex |" in table1(results, [0])
    assert main(args) == 0  # the masks come from the stage cache


def test_the_papers_claims_are_paired_by_surrogate_and_seed():
    """GA − non-GA is read on the same people and seed: a constant 2-point gain is +2.0 ± 0.0 whatever the seed
    noise, and a pair missing a seed is left out rather than half-compared."""
    from decobench.results.cloak_table import _claims

    def res(hit):
        return {"evaluations": [{"metrics": {"privacy_fr_top1_blackbox": {"value": hit}}}]}
    noise = {0: 0.00, 1: 0.10, 2: -0.05}
    rows = {("resnet-arcface", "fi_uap", ""): {s: res(0.20 + n) for s, n in noise.items()},
            ("resnet-arcface", "ga_fi_uap", ""): {s: res(0.18 + n) for s, n in noise.items()},
            ("resnet-arcface", "opom_convex", ""): {0: res(0.2), 1: res(0.2)}}
    text = "\n".join(_claims(rows, [0, 1, 2]))
    assert "ga_fi_uap − fi_uap: resnet-arcface +2.0 ± 0.0; pooled +2.0 ± 0.0 (positive in 3 of 3 pairs)" in text
    assert "opom_convex −" not in text and "ga_opom_convex" not in text


def test_the_cloak_track_runs_on_the_documented_real_layout_at_112_px(tmp_path):
    """--data-root DIR with DIR/privacy-commons/identities/<person>/*.png + distractors.txt, upsampled to 112 px
    (the real-data default): masks are crafted at 112 px, the white-box cloak protects, the run names the data."""
    from PIL import Image

    from decobench.cloaks.data import synthfaces

    people = synthfaces(6, 60)
    root = tmp_path / "data" / "privacy-commons"
    for name, craft, test in zip(people.identities, people.craft, people.test):
        (root / "identities" / name).mkdir(parents=True)
        for j, img in enumerate([*craft, *test]):
            Image.fromarray(img).resize((112, 112), Image.BICUBIC).save(root / "identities" / name / f"{j:02d}.png")
    (root / "distractors").mkdir()
    for j, img in enumerate(people.distractors):
        Image.fromarray(img).resize((112, 112), Image.BICUBIC).save(root / "distractors" / f"{j:03d}.png")
    (root / "distractors.txt").write_text("".join(f"distractors/{j:03d}.png\n" for j in range(60)))
    assert main(["run", "--method", "fi_uap", "--track", "cloak", "--profile", "quick", "--out", str(tmp_path / "runs"),
                 "--data-root", str(tmp_path / "data"), "--set", "cloak.targets=resnet-arcface,senet-arcface"]) == 0
    (path,) = list((tmp_path / "runs").rglob("result.json"))
    r = json.loads(path.read_text())
    assert r["resolution"] == 112 and r["parameter_counts"]["people"] == 6 and r["parameter_counts"]["distractors"] == 60
    ev = r["evaluations"][0]
    assert ev["dataset"] == "privacy-commons"
    white, clean = ev["metrics"]["privacy_fr_top1_whitebox"]["value"], ev["reference"]["real_source"]["privacy_fr_top1_whitebox"]["value"]
    assert clean > 0.5 and white < clean - 0.3
