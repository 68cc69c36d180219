"""mia_generator: exact ROC and TPR@FPR, calibration-only timestep choice, batch invariance, known answers."""

import jsonschema
import numpy as np
import pytest
import torch

from decobench.attacks import mia_generator as M
from decobench.attacks.base import AttackContext
from decobench.results.schema import _metric
from decobench.run.config import EvalConfig
from decobench.run.train import LatentSet
from tests.tiny_models import tiny_base

# pytest -n N: this module's tests share a module fixture, so one worker runs them all
pytestmark = pytest.mark.xdist_group("test_mia_generator")


def _brute_auc(pos, neg):
    d = np.asarray(pos)[:, None] - np.asarray(neg)[None, :]
    return (d > 0).mean() + 0.5 * (d == 0).mean()


def test_exact_roc_with_ties_and_outliers():
    rng = np.random.default_rng(0)
    # 200 non-members: one far outlier, two tied at 5.0, the rest below 4
    neg = np.r_[1e12, 5.0, 5.0, np.clip(rng.normal(0, 1, 197), -4, 3.9)]
    # 100 members: 30 at 6.0, 10 tied with the two non-members at 5.0, the rest below 4
    pos = np.r_[[6.0] * 30, [5.0] * 10, np.clip(rng.normal(1, 1, 60), -4, 3.9)]
    fpr, tpr, thr = M.roc(pos, neg)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert M.roc_auc(fpr, tpr) == pytest.approx(_brute_auc(pos, neg), abs=1e-12)
    # at 1 % FPR (2 false positives allowed): threshold 5.0 brings 3 -> excluded; read at threshold 6.0
    t, f = M.tpr_at_fpr(fpr, tpr, 0.01, len(neg))
    assert (t, f) == (0.3, 0.005)
    for target in (0.001, 0.005, 0.01, 0.02, 0.1, 0.5):
        t, f = M.tpr_at_fpr(fpr, tpr, target, len(neg))
        assert f <= target  # the realised FPR is never above the target
        assert t == tpr[fpr <= target + 1e-12].max()


def test_exact_roc_matches_sklearn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    pos, neg = rng.integers(0, 20, 300).astype(float), rng.integers(0, 18, 500).astype(float)  # many ties
    fpr, tpr, thr = M.roc(pos, neg)
    y, s = np.r_[np.ones(300), np.zeros(500)], np.r_[pos, neg]
    f2, t2, th2 = metrics.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2)
    np.testing.assert_allclose(tpr, t2)
    assert M.auc(pos, neg) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)


def test_metrics_records_and_refusal_below_one_over_target():
    rng = np.random.default_rng(2)
    m = M.mia_metrics("loss", rng.normal(0.3, 1, 500), rng.normal(0, 1, 500), 200, 0)
    assert set(m) == {"privacy_mia_loss_auc", "privacy_mia_loss_tpr_fpr1", "privacy_mia_loss_tpr_fpr01"}
    auc = m["privacy_mia_loss_auc"]
    assert auc["direction"] == "lower_is_better" and auc["chance"] == 0.5 and auc["n"] == 1000
    assert auc["ci"][0] <= auc["value"] <= auc["ci"][1]
    t1 = m["privacy_mia_loss_tpr_fpr1"]
    assert t1["chance"] == 0.01 and t1["realised_fpr"] <= 0.01 and len(t1["ci"]) == 2
    na = m["privacy_mia_loss_tpr_fpr01"]
    assert na["value"] is None and "1000" in na["note"] and "500" in na["note"]
    for v in m.values():
        assert "majority" not in v
        assert not list(jsonschema.Draft202012Validator(_metric).iter_errors(v))


def _latents(n, seed, shift=0.0, shape=(4, 8, 8), text_dim=16):
    g = torch.Generator().manual_seed(seed)
    return LatentSet(torch.randn(n, *shape, generator=g) + shift, torch.ones(n, *shape) * 0.1,
                     torch.randn(n, 5, text_dim, generator=g), {})


@pytest.fixture(scope="module")
def tiny_gen():
    base, ref = tiny_base(seed=0), tiny_base(seed=1)
    base.unet.eval()
    ref.unet.eval()
    gen = M.unet_access(base.unet, base.scheduler_config, _latents(130, 1), _latents(130, 2), 0.5,
                        torch.zeros(1, 5, 16))
    gen.eps_reference = M.unet_access(ref.unet, ref.scheduler_config, gen.members, gen.nonmembers, 0.5,
                                      gen.null_text).eps
    return gen


def test_scores_do_not_depend_on_batch_size(tiny_gen):
    spec = {"loss": (25, 300), "secmi": (50,), "pia": (100,)}
    idx = np.array([5, 0, 17, 3, 9, 11, 2])
    a, qa = M.score_examples(tiny_gen, tiny_gen.members, idx, 0, spec, draws=3, seed=4, batch=2)
    b, qb = M.score_examples(tiny_gen, tiny_gen.members, idx, 0, spec, draws=3, seed=4, batch=64)
    c, _ = M.score_examples(tiny_gen, tiny_gen.members, idx[:3], 0, spec, draws=3, seed=4, batch=1)
    assert qa == qb == len(idx) * (2 * 3 + (5 + 2) + 2)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(a[k][:3], c[k], rtol=1e-4, atol=1e-7)  # an example's score is its own


def test_timesteps_are_chosen_on_the_calibration_subset_only(tiny_gen, monkeypatch):
    calls = []
    real = M.score_examples

    def recording(gen, lat, idx, side, spec, *a, **k):
        calls.append((side, set(np.asarray(idx).tolist()), {kk: tuple(v) for kk, v in spec.items()}))
        return real(gen, lat, idx, side, spec, *a, **k)
    monkeypatch.setattr(M, "score_examples", recording)
    res = M.attack_generator(tiny_gen, samples=20, calibration_samples=10, draws=1, resamples=100, seed=3)
    full = {"loss": M.LOSS_T, "lossref": M.LOSS_T, "secmi": M.SECMI_T, "pia": M.LOSS_T}
    cal_calls = [c for c in calls if c[2] == full]
    scored_calls = [c for c in calls if c[2] != full]
    assert len(cal_calls) == 2 and len(scored_calls) == 2
    for side in (0, 1):
        cal = next(c[1] for c in cal_calls if c[0] == side)
        scored = next(c[1] for c in scored_calls if c[0] == side)
        assert len(cal) == 10 and len(scored) == 20 and not cal & scored
    # the scored examples are queried at the chosen timestep alone, which is the calibration argmax
    chosen = res.info["chosen_timesteps"]
    assert scored_calls[0][2] == {k: (t,) for k, t in chosen.items()}
    for k, t in chosen.items():
        aucs = res.info["calibration_auc"][k]
        assert aucs[str(t)] == max(aucs.values())
    # the same seed draws the same subsets; another seed other ones
    calls.clear()
    M.attack_generator(tiny_gen, samples=20, calibration_samples=10, draws=1, resamples=100, seed=4)
    assert next(c[1] for c in calls if c[0] == 0 and c[2] == full) != next(
        c[1] for c in cal_calls if c[0] == 0)


def test_run_returns_every_metric_with_direction_chance_and_ci(tiny_gen):
    cfg = EvalConfig(mia_samples=100, mia_calibration_samples=10, mia_draws=1, bootstrap=100)
    rel = type("Release", (), {"generator": tiny_gen})()
    res = M.GeneratorMembership(AttackContext(cfg=cfg, seed=0, log=lambda *a: None)).run(rel)
    names = {f"privacy_mia_{a}_{k}" for a in M.NAMES for k in ("auc", "tpr_fpr1", "tpr_fpr01")}
    assert set(res.metrics) == names
    for name, m in res.metrics.items():
        assert m["direction"] == "lower_is_better" and "majority" not in m
        assert not list(jsonschema.Draft202012Validator(_metric).iter_errors(m)), name
        if name.endswith("fpr01"):
            assert m["value"] is None and m["chance"] == 0.001  # 100 < 1000 non-members
        else:
            assert m["chance"] == (0.5 if name.endswith("auc") else 0.01)
            assert len(m["ci"]) == 2 and isinstance(m["ci_includes_chance"], bool) and m["n"] == 200
    assert res.metrics["privacy_mia_loss_tpr_fpr1"]["realised_fpr"] <= 0.01
    info = res.info
    assert info["calibration_per_side"] == 10 and info["scored_per_side"] == 100
    assert set(info["chosen_timesteps"]) == {"loss", "lossref", "secmi", "pia"}
    assert info["unet_queries"]["scored"] > 0 and info["wall_seconds"] >= 0
    # the blind baseline sees inputs only; members and non-members here are the same distribution
    assert 0.35 < res.metrics["privacy_mia_blind_auc"]["value"] < 0.65
    # without a reference model the calibrated loss is n/a, the others run
    from dataclasses import replace

    alone = M.attack_generator(replace(tiny_gen, eps_reference=None), 20, 10, 1, 100, 0)
    assert alone.metrics["privacy_mia_lossref_auc"]["value"] is None
    assert alone.metrics["privacy_mia_loss_auc"]["value"] is not None
    # no white-box access: every metric n/a, nothing raised
    none = M.GeneratorMembership(AttackContext(cfg=cfg)).run(type("Release", (), {"generator": None})())
    assert set(none.metrics) == names and all(m["value"] is None for m in none.metrics.values())


def test_blind_baseline_sees_a_distribution_shift_and_only_then():
    def blind(shift):
        gen = M.GeneratorAccess(lambda x, t, c: torch.zeros_like(x), torch.linspace(0.999, 0.01, 1000),
                                _latents(500, 5, shift=shift), _latents(500, 6), 1.0, torch.zeros(1, 5, 16))
        res = M.attack_generator(gen, 400, 100, 1, 200, 0, names=("blind",))
        assert set(res.metrics) == {"privacy_mia_blind_auc", "privacy_mia_blind_tpr_fpr1",
                                    "privacy_mia_blind_tpr_fpr01"} and res.info["unet_queries"]["scored"] == 0
        return res.metrics["privacy_mia_blind_auc"]
    assert blind(0.2)["ci"][0] > 0.8
    assert abs(blind(0.0)["value"] - 0.5) < 0.08

# the known-answer calibration runs in tests/test_attacks.py (parametrised over every registered attack)
