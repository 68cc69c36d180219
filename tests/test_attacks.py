"""Attacks: every registered attack passes its known-answer calibration; metric records are complete."""

import numpy as np
import pytest
import torch

from decobench.attacks.base import AttackContext
from decobench.attacks.checks import check_attack, small_release
from decobench.attacks.metrics import accuracy_metric, balanced_accuracy, reads_chance
from decobench.attacks.quality import MIN_SAMPLES_PER_DIM, quality_metrics
from decobench.evaluation.classifier import PROFILES, to_tensor, train_classifier
from decobench.registry import attacks
from decobench.run.config import PROFILES as RUN_PROFILES

ALL = attacks.names()
SLOW_CALIBRATIONS = {"cls", "feature_inversion", "mia_generator", "release_inversion"}  # 50-100 s each


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if n in SLOW_CALIBRATIONS else ())
                                  for n in ALL])
def test_every_registered_attack_passes_its_calibration(name):
    cases = attacks.get(name).calibrate(seed=0)
    assert {c.case for c in cases} == {"planted", "absent"}
    assert all(c.passed for c in cases), cases


@pytest.mark.parametrize("name", ["pt", "probe", "quality", "identity_linkage"])
def test_check_attack_finds_nothing_wrong(name):
    assert check_attack(name) == []


def test_accuracy_carries_majority_balanced_accuracy_and_flags():
    """ce_mask's old PT 27.7 % was the majority rate (27.4 %) printed beside 1/K only."""
    y = np.array([0] * 274 + [1] * 200 + [2] * 200 + [3] * 163 + [4] * 163)
    pred = np.zeros_like(y)  # always the majority class
    m = accuracy_metric(y, pred, 5, "lower_is_better", 500, 0)
    assert m["value"] == pytest.approx(0.274) and m["majority"] == pytest.approx(0.274)
    assert m["balanced_accuracy"] == pytest.approx(0.2) and m["chance"] == 0.2
    assert m["ci_includes_majority"] and reads_chance(m)
    assert balanced_accuracy(np.array([0, 0, 1]), np.array([0, 0, 0])) == 0.5


def test_probe_reads_features_not_text():
    """Features differ per prompt; the probe's headline metric uses the null-prompt ones."""
    rel = small_release()
    k = rel.n_classes["race"]
    y = torch.tensor(rel.real["gen"].labels["race"].to_numpy())
    yt = torch.tensor(rel.real["test"].labels["race"].to_numpy())
    # the training-prompt features carry race (as the paper's prompt does); the null-prompt ones do not
    rel.features[("gen", "train")] = torch.nn.functional.one_hot(y, k).float() * 3 + torch.randn(len(y), k)
    rel.features[("test", "train")] = torch.nn.functional.one_hot(yt, k).float() * 3 + torch.randn(len(yt), k)
    res = attacks.get("probe")(AttackContext(cfg=RUN_PROFILES["quick"].eval)).run(rel)
    assert reads_chance(res.metrics["privacy_probe_race"])
    assert not reads_chance(res.metrics["privacy_probe_race_train_prompt"])


def test_quality_uses_a_fixed_extractor_and_refuses_fd_on_too_few_samples():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(300, 256, generator=g, dtype=torch.float64) for _ in range(3))
    m, floor = quality_metrics(a, b, c, 5, 0)
    assert m["fd_synthface"]["value"] is None and "needs >= 1024" in m["fd_synthface"]["note"]
    assert 300 < MIN_SAMPLES_PER_DIM * 256
    assert abs(m["kid_synthface"]["value"]) < 3 * m["kid_synthface"]["std"] + 1e-9  # same distribution
    assert "kid_synthface" in floor
    m2, _ = quality_metrics(a, b, c, 5, 0)
    assert m2 == m  # nothing retrained per call: the same inputs give the same number


@pytest.mark.slow
def test_embedded_classifier_budget_lets_early_stopping_decide():
    """The embedded profile stopped at 10 of 10 epochs; its budget must leave room for the stopping rule."""
    cfg = PROFILES["embedded"].model_copy(update={"image_size": 16})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 700)
    img = rng.integers(0, 255, (700, 16, 16, 3)).astype(np.uint8)
    img[:, :4, :4] = (y * 200)[:, None, None, None]
    x = to_tensor(img, 16)
    _, hist = train_classifier(x[:500], torch.as_tensor(y[:500]), x[500:], torch.as_tensor(y[500:]), 2, cfg)
    assert len(hist) < cfg.max_epochs
