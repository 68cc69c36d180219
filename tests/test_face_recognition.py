"""The face-recognition zoo, 1:N identification, the identity gallery and identity linkage."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from decobench.cli.main import main
from decobench.evaluation.identification import attribute_only_ranks, hit_rates, match_ranks


def test_a_tie_with_another_identity_counts_against_the_probe():
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranks = match_ranks(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]]), [7, 9, 9], gallery, [7, 8, 9])
    # probe 0 ties its true match with identity 8 -> rank 1 (not a hit); probe 2 is beaten by both others
    assert ranks.tolist() == [1, 0, 2]
    assert hit_rates(ranks, (1, 2)) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}


def test_a_probe_without_a_true_match_is_a_miss():
    ranks = match_ranks(torch.eye(2), [1, 5], torch.eye(2), [1, 2])
    assert ranks.tolist() == [0, 2]


def test_attribute_only_matcher_is_one_over_the_matching_candidates():
    gal_attrs = np.array([[0, 0, 1]] * 4 + [[1, 1, 2]] * 2)
    ranks = attribute_only_ranks(np.array([[0, 0, 1]] * 2000), [3] * 2000, gal_attrs, [0, 1, 2, 3, 4, 5], seed=0)
    assert hit_rates(ranks, (1,))[1] == pytest.approx(0.25, abs=0.03)


def _digest(name):
    from decobench.data.open import open_dataset

    ds = open_dataset(name)
    return ds.fingerprint()[:12], hashlib.sha256(ds.load_images(list(ds.records.image_id[:200]), 32).tobytes()).hexdigest()[:12]


def test_identity_marks_leave_the_deco_bench_domains_untouched():
    # the digests of the images every committed split, cache and result was made from
    assert _digest("synthfaces-a") == ("fa2c379d28e7", "940ace0c4f94")
    assert _digest("synthfaces-b") == ("b53e1078e029", "2c0a70e14ff2")


def test_the_fr_population_shares_no_identity_or_image_with_any_other_domain():
    from decobench.data.synthfaces import DOMAINS, build_population

    fr = build_population(DOMAINS["synthfaces-fr"])
    assert fr.config.identity_marks and "mole_xy" in fr.params
    assert len({d.seed for d in DOMAINS.values()}) == len(DOMAINS)
    for name in ("synthfaces-a", "synthfaces-b", "synthfaces-pretrain"):
        assert not DOMAINS[name].identity_marks
        assert not set(fr.labels.image_id) & set(build_population(DOMAINS[name]).labels.image_id)


def test_identity_gallery_never_holds_a_released_source_and_has_every_released_person():
    from decobench.data.open import open_dataset
    from decobench.evaluation.identification import identity_gallery
    from decobench.run.stages import subset_ids
    from decobench.splits import load_split

    ds = open_dataset("synthfaces-a")
    gen = load_split("synthfaces-a", "gen")
    released = gen[:30] + subset_ids(gen[30:], 30)  # the first two people have every image released
    g = identity_gallery(ds, released, load_split("synthfaces-a", "test")[:100], 32)
    assert not set(g.ids) & set(released)
    rec = ds.records
    people = set(rec.identity.iloc[ds.index_of(released)])
    fully_released = {p for p in people if set(rec.image_id[rec.identity == p]) <= set(released)}
    assert len(fully_released) == 2 and not fully_released & set(g.labels.identity)
    assert people - fully_released <= set(g.labels.identity)
    assert g.labels.identity.isin(people).sum() == len(people) - 2  # one other image each
    assert len(g.ids) == len(people) - 2 + 100 and g.images.shape[1:] == (32, 32, 3)


def test_identity_gallery_is_none_without_identities(fairface_root):
    from decobench.data.open import open_dataset
    from decobench.evaluation.identification import identity_gallery

    ds = open_dataset("fairface", fairface_root)
    ids = list(ds.records.image_id[:5])
    assert identity_gallery(ds, ids, ids, 32) is None


def test_zoo_manifest_matches_the_committed_weights_and_meets_the_identity_target():
    from decobench.io import sha256_file
    from decobench.models.fr.zoo import WEIGHTS, ZOO, manifest

    man = manifest()
    families = {s.family for s in ZOO}
    assert len(ZOO) >= 6 and len(families) >= 3 and {s.loss for s in ZOO} >= {"arcface", "cosface", "softmax"}
    for s in ZOO:
        m = man["models"][s.name]
        assert m["sha256"] == sha256_file(WEIGHTS / f"{s.name}.safetensors"), s.name
    best = max(man["models"][s.name]["calibration"]["rank1"] for s in ZOO)
    # the identity-calibration target: the best model finds >= 90 % of clean probes at rank 1
    assert best >= 0.90 and best > 20 * man["attribute_only_floor"]["rank1"]
    assert man["attribute_only_floor"]["rank1"] < 0.05
    assert "10500 distractor" in man["calibration_protocol"]


def test_committed_zoo_weights_belong_to_the_population_that_is_rendered_now():
    """Each model's validation rank-1 at its selected epoch, recomputed from today's synthfaces-fr
    renders: a change to the population or the renderer without retraining the zoo fails here."""
    from decobench.models.fr.train import FRData, _val_rank1
    from decobench.models.fr.zoo import ZOO, load_recognizer, manifest

    man, data, cache = manifest(), FRData(), {}
    for s in ZOO:
        m = man["models"][s.name]
        recorded = m["history"][m["selected_epoch"] - 1]["val_rank1"]
        assert _val_rank1(load_recognizer(s.name).net, data, cache) == pytest.approx(recorded, abs=0.011), s.name


def test_zoo_models_load_and_embed_to_unit_norm():
    from decobench.models.fr.zoo import ZOO, load_recognizer

    imgs = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    for s in ZOO:
        e = load_recognizer(s.name).embed(imgs)
        assert e.shape == (3, s.dim) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


def test_fr_cli_lists_the_zoo_and_refuses_unknown_models(capsys):
    assert main(["fr", "list"]) == 0
    out = capsys.readouterr().out
    assert "resnet-arcface" in out and "attribute-only" in out
    assert main(["fr", "train", "--model", "vgg-face"]) == 2
    assert "unknown FR model" in capsys.readouterr().err
    assert main(["run", "--method", "baseline", "--setup", "A", "--set", "eval.fr_models=nope"]) == 2


def test_dlib_black_box_embeds_or_says_how_to_install_it(monkeypatch):
    from decobench.models.base import BaseModelError
    from decobench.models.fr.zoo import load_recognizer

    try:
        rec = load_recognizer("dlib")
    except BaseModelError as exc:
        assert "decobench[dlib]" in str(exc)
        return
    e = rec.embed(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))
    assert e.shape == (2, 128) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # the extra missing
    with pytest.raises(BaseModelError, match=r"decobench\[dlib\]"):
        load_recognizer("dlib")


def test_user_fr_weights_load_from_a_torchscript_file(tmp_path):
    from decobench.models.base import BaseModelError
    from decobench.models.fr.nets import FRNet
    from decobench.models.fr.zoo import load_recognizer

    net = FRNet("resnet", dim=16).backbone.eval()
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 40, 40)), str(tmp_path / "mine.pt"))
    rec = load_recognizer(f"torchscript:{tmp_path / 'mine.pt'}@40")
    e = rec.embed(np.zeros((3, 32, 32, 3), np.uint8))
    assert e.shape == (3, 16) and rec.differentiable
    with pytest.raises(BaseModelError, match="not found"):
        load_recognizer(f"torchscript:{tmp_path / 'nope.pt'}@40")
    with pytest.raises(BaseModelError, match="torchscript:<path>@<input size>"):
        load_recognizer(f"torchscript:{tmp_path / 'mine.pt'}")


def test_a_missing_fr_model_stops_the_run_before_it_trains(tmp_path, monkeypatch, capsys):
    from decobench.models.fr import zoo

    monkeypatch.setattr(zoo, "WEIGHTS", tmp_path / "no-weights")
    out = tmp_path / "runs"
    assert main(["run", "--method", "baseline", "--setup", "A", "--profile", "quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: FR zoo weights missing") and "decobench fr train --model" in err
    assert not (out / ".cache").exists() or not any((out / ".cache").iterdir())
    # without identity attacks the same run needs no FR model
    assert zoo.check_available(()) is None
