"""The model-track membership attack's pieces: balanced reference membership, LiRA's and RMIA's scores on
cases with a known ordering, and n/a (never a made-up number) where references cannot be had."""

import numpy as np

from decobench.attacks.mia_model import (NAMES, attack_model, balanced_keep, calibration_data, lira_scores,
                                         mlp_recipe, rmia_scores)


def test_every_pool_example_is_in_exactly_half_the_references():
    keep = balanced_keep(8, 50, np.random.default_rng(0))
    assert keep.shape == (8, 50) and (keep.sum(0) == 4).all()
    assert len({tuple(c) for c in keep.T}) > 10  # not the same split for everyone


def test_lira_prefers_the_example_whose_signal_sits_with_its_in_references():
    rng = np.random.default_rng(0)
    keep = balanced_keep(8, 2, rng)
    refs = np.where(keep, 3.0, 0.0) + rng.normal(0, 0.3, (8, 2))  # IN references read high, OUT low
    online, offline = lira_scores(np.array([3.0, 0.0]), refs, keep)
    assert online[0] > 0 > online[1] and offline[0] > offline[1]


def test_rmia_reads_one_half_when_the_target_is_one_of_its_references():
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=(4, 30)), rng.normal(size=(4, 500))
    same = rmia_scores(x.mean(0), x, z.mean(0), z)  # target's p = the references' average: no signal
    assert abs(same.mean() - 0.5) < 0.15
    boosted = rmia_scores(x.mean(0) + 2, x, z.mean(0), z)  # target much surer on x than references: members
    assert (boosted > 0.9).all()


def test_without_a_recipe_only_the_loss_attack_reads_a_number():
    data = calibration_data(0)
    target = mlp_recipe(data["members"], 0, epochs=20)
    res = attack_model(target, data["members"], data["nonmembers"], None, ["label"], 50, 4, data["auxiliary"], 50,
                       100, 200, 0)
    assert res.metrics["privacy_mia_model_loss_auc"]["value"] is not None
    for name in NAMES[1:]:
        m = res.metrics[f"privacy_mia_{name}_auc"]
        assert m["value"] is None and "recipe" in m["note"]
    short = attack_model(target, data["members"], data["nonmembers"], mlp_recipe, ["label"], 50, 4,
                         data["auxiliary"], 450, 100, 200, 0)
    assert "auxiliary population has 400 images" in short.metrics["privacy_mia_model_rmia_auc"]["note"]
