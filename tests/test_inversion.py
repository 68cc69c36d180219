"""release_inversion: epoch selected on held-out auxiliary pairs only, per-image PSNR/SSIM with an explicit
data range, n/a without the release mechanism or an auxiliary population, scoring, and calibration."""

import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch

import decobench.attacks.inversion as inv
from decobench.attacks.base import AttackContext, DataRelease, RealSplit
from decobench.results.schema import _metric
from decobench.run.config import EvalConfig


def _imgs(n: int, seed: int, lo: int = 0, hi: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, (n, 32, 32, 3), dtype=np.uint8)


def _negate(x, rows):
    return (255 - x).astype(np.uint8)


def test_psnr_and_ssim_are_per_image_with_an_explicit_data_range():
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    src = np.full((2, 32, 32, 3), 100, np.uint8)
    recon = src.copy()
    recon[0, ::2] += 10
    recon[0, 1::2] -= 10        # +-10 grey levels: MSE (10/255)^2
    recon[1] += 20              # +20: MSE (20/255)^2
    _, psnr = inv.pixel_scores(recon, src)
    np.testing.assert_allclose(psnr, [20 * np.log10(255 / 10), 20 * np.log10(255 / 20)], atol=1e-6)
    pooled = 10 * np.log10(255 ** 2 / ((10 ** 2 + 20 ** 2) / 2))
    assert abs(psnr.mean() - pooled) > 0.5          # a mean over images, not the PSNR of the pooled MSE

    same = _imgs(3, 0)
    ssim, psnr = inv.pixel_scores(same, same)
    np.testing.assert_allclose(ssim, 1.0, atol=1e-9)
    assert np.all(psnr == inv.PSNR_CAP)             # an exact copy: capped, not inf

    dark, noisy = _imgs(4, 1, 0, 30), _imgs(4, 1, 0, 30)
    noisy[..., 0] = np.clip(noisy[..., 0].astype(int) + _imgs(4, 2, 0, 6)[..., 0] - 3, 0, 255)
    ssim, _ = inv.pixel_scores(noisy, dark)
    p, t = inv._to01(noisy).double(), inv._to01(dark).double()
    np.testing.assert_allclose(ssim, tm_ssim(p, t, data_range=1.0, reduction="none").numpy(), atol=1e-9)
    guessed = tm_ssim(p, t, reduction="none").numpy()   # data range guessed from the batch: not what we report
    assert np.abs(ssim - guessed).max() > 1e-3


def test_epoch_is_selected_on_held_out_auxiliary_pairs_only(monkeypatch):
    aux, scored_src = _imgs(40, 0), _imgs(12, 1)
    seen, real = [], inv.heldout_mse

    def spy(decoder, released, sources):
        v = real(decoder, released, sources)
        seen.append((released.clone(), sources.clone(), v))
        return v
    monkeypatch.setattr(inv, "heldout_mse", spy)
    recon, floor, info = inv.invert(aux, None, _negate, _negate(scored_src, None), 3, seed=0)

    aux_rel, aux_src = inv._to01(_negate(aux, None)).flatten(1), inv._to01(aux).flatten(1)
    scored = inv._to01(_negate(scored_src, None)).flatten(1)
    n_hold = round(inv.HOLDOUT * 40)
    assert len(seen) == 3 and info["aux_heldout_pairs"] == n_hold and info["aux_train_pairs"] == 40 - n_hold
    held = None
    for rel, src, _ in seen:
        rel, src = rel.flatten(1), src.flatten(1)
        assert len(rel) == n_hold
        idx = [int((aux_rel == r).all(1).nonzero()[0, 0]) for r in rel]      # every row an auxiliary pair
        assert torch.equal(aux_src[idx], src)                                  # with its own source
        assert not any((scored == r).all(1).any() for r in rel)                # never a scored image
        assert held in (None, idx)
        held = idx
    assert info["heldout_mse"] == [float(f"{v:.6g}") for _, _, v in seen]
    assert info["selected_epoch"] == int(np.argmin([v for _, _, v in seen])) + 1
    assert recon.shape == scored_src.shape and recon.dtype == np.uint8
    assert np.array_equal(floor[0], np.round(aux.astype(float).mean(0)).astype(np.uint8))

    # the scored images change nothing of training or selection
    _, _, info2 = inv.invert(aux, None, _negate, _negate(_imgs(12, 7), None), 3, seed=0)
    assert info2["heldout_mse"] == info["heldout_mse"] and info2["selected_epoch"] == info["selected_epoch"]


def test_perceptual_term_trains_when_switched_on(monkeypatch):
    from decobench.models import face_features

    monkeypatch.setattr(inv, "FEATURE_WEIGHT", 0.01)
    aux = _imgs(24, 3)
    _, _, info = inv.invert(aux, None, _negate, _negate(aux[:4], None), 1, 0, "cpu", face_features.load())
    assert info["perceptual_weight"] == 0.01 and np.isfinite(info["heldout_mse"][0])


def _release(split, **kw) -> DataRelease:
    return DataRelease(dataset="toy", sensitive="race", utility=(), n_classes={"race": 5}, released=split,
                       released_gen=split, real={"train_on": split}, **kw)


@pytest.mark.parametrize("missing", ["release_fn", "auxiliary"])
def test_not_applicable_without_release_fn_or_auxiliary(missing):
    split = RealSplit(_imgs(4, 0), pd.DataFrame({"race": [0, 1, 2, 3], "identity": [0, 1, 2, 3]}), list("abcd"))
    kw = {"release_fn": lambda x, r: x, "auxiliary": split, missing: None}
    res = inv.ReleaseInversion(AttackContext(cfg=EvalConfig())).run(_release(split, **kw))
    assert set(res.metrics) == {f"privacy_inversion_{m}" for m in inv.NAMES}
    for m in res.metrics.values():
        assert m["value"] is None and m["note"].startswith("n/a") and m["direction"] == inv.LOWER
        assert list(jsonschema.Draft202012Validator(_metric).iter_errors(m)) == []
        assert ("release_fn" if missing == "release_fn" else "auxiliary") in m["note"]


class _PixelRecognizer:
    """A stand-in FR model (pooled pixels), so scoring is tested without the zoo's weights."""

    def __init__(self, name: str, pool: int):
        self.name, self.pool = name, pool

    def embed(self, images):
        x = torch.nn.functional.avg_pool2d(inv._to01(images), self.pool).flatten(1)
        return torch.nn.functional.normalize(x - 0.5, dim=1)


def test_scoring_names_headlines_floor_rank1_and_race():
    from decobench.models import face_features

    n = 30
    src = _imgs(n, 4)
    labels = pd.DataFrame({"identity": np.arange(n), "race": np.arange(n) % 5})
    sources = RealSplit(src, labels, [str(i) for i in range(n)])
    # gallery: the sources of all but the last 5 people (perfect recon hits them), plus distractors
    g_imgs = np.concatenate([src[:n - 5], _imgs(20, 5)])
    gallery = RealSplit(g_imgs, pd.DataFrame({"identity": np.r_[np.arange(n - 5), 1000 + np.arange(20)]}), [])
    floor = np.repeat(src[:1] // 2 + 60, n, 0)
    recs = [_PixelRecognizer("px-a", 4), _PixelRecognizer("px-b", 8)]
    m, ref, info = inv.score(src.copy(), floor, sources, gallery, recs, face_features.load(), 100, 0, "toy")
    assert set(m) == {"privacy_inversion_ssim", "privacy_inversion_psnr", "privacy_inversion_face_similarity",
                      "privacy_inversion_face_similarity_px-b", "privacy_inversion_rank1",
                      "privacy_inversion_rank1_px-b", "privacy_inversion_race"}
    assert set(ref) == {"privacy_inversion_ssim", "privacy_inversion_psnr", "privacy_inversion_face_similarity",
                        "privacy_inversion_face_similarity_px-b"}
    for name, v in {**m, **{"ref " + k: r for k, r in ref.items()}}.items():
        assert list(jsonschema.Draft202012Validator(_metric).iter_errors(v)) == [], name
        assert v["direction"] == inv.LOWER
    assert m["privacy_inversion_face_similarity"]["headline"] and m["privacy_inversion_rank1"]["headline"]
    assert not m["privacy_inversion_face_similarity_px-b"]["headline"]
    assert not m["privacy_inversion_rank1_px-b"]["headline"]
    assert m["privacy_inversion_face_similarity"]["fr_model"] == "px-a"
    assert m["privacy_inversion_face_similarity"]["value"] == pytest.approx(1.0, abs=1e-5)
    assert ref["privacy_inversion_face_similarity"]["value"] < 0.9
    assert m["privacy_inversion_ssim"]["value"] == pytest.approx(1.0)
    assert ref["privacy_inversion_ssim"]["value"] < 0.9
    r1 = m["privacy_inversion_rank1"]
    assert r1["value"] == 1.0 and r1["n"] == n - 5 and r1["gallery"] == len(g_imgs)
    assert info["probes_with_gallery_match"] == n - 5
    race = m["privacy_inversion_race"]
    assert race["n"] == n and race["chance"] == pytest.approx(0.2) and "synthfaces-pretrain" in race["note"]

    m, _, info = inv.score(src, floor, sources, None, recs, face_features.load(), 100, 0, "toy")
    assert m["privacy_inversion_rank1"]["value"] is None and info["probes_with_gallery_match"] is None


@pytest.mark.parametrize("fr", ["stand-in", "zoo"])
def test_run_end_to_end_on_synthfaces(fr, monkeypatch):
    """The whole run(): with stand-in FR models and with the committed zoo models."""
    from decobench.attacks.checks import small_release
    from decobench.data.open import open_dataset
    from decobench.models.fr import zoo

    cfg = EvalConfig(fr_models=("resnet-arcface", "senet-arcface"), inversion_epochs=2, bootstrap=100)
    if fr == "stand-in":
        monkeypatch.setattr(zoo, "load_recognizer", lambda name, device="cpu": _PixelRecognizer(name, 4))
    release = small_release(60)
    images, labels = open_dataset("synthfaces-a").auxiliary(120, 32)
    release.auxiliary = RealSplit(images, labels, list(labels["image_id"]))
    release.release_fn = lambda x, rows: x.copy()
    res = inv.ReleaseInversion(AttackContext(cfg=cfg)).run(release)
    m, ref = res.metrics, res.reference["constant_floor"]
    assert m["privacy_inversion_face_similarity"]["value"] > ref["privacy_inversion_face_similarity"]["value"]
    assert m["privacy_inversion_ssim"]["value"] > ref["privacy_inversion_ssim"]["value"] + 0.1
    assert m["privacy_inversion_rank1"]["fr_model"] == "resnet-arcface"
    assert m["privacy_inversion_rank1_senet-arcface"]["headline"] is False
    assert m["privacy_inversion_race"]["n"] == 60
    assert res.info["aux_images"] == 120 and res.info["selected_epoch"] in (1, 2) and res.info["wall_s"] >= 0

# the known-answer calibration runs in tests/test_attacks.py (parametrised over every registered attack)


def test_pixel_scores_in_chunks_equal_one_pass_and_keep_memory_bounded():
    """6,000 members at 32 px in one SSIM call asked for 30 GB (the embedded model track); chunks of 256 give
    the same per-image figures to the last bit."""
    import numpy as np
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    from decobench.attacks.inversion import PSNR_CAP, _to01, pixel_scores

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (600, 16, 16, 3), dtype=np.uint8) for _ in range(2))
    ssim, psnr = pixel_scores(a, b)
    x, y = _to01(a).double(), _to01(b).double()
    assert np.array_equal(ssim, structural_similarity_index_measure(x, y, data_range=1.0, reduction="none").numpy())
    assert np.array_equal(psnr, peak_signal_noise_ratio(x, y, data_range=1.0, reduction="none", dim=(1, 2, 3))
                          .clamp(max=PSNR_CAP).numpy())
