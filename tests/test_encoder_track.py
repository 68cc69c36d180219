"""The game trainer on the model track's backbone (encoder + utility heads): methods, phases and DP-SGD run
unchanged; a private encoder's per-example gradients add up to the batch gradient."""

import pytest
import torch

from decobench.methods.base import MethodSpec
from decobench.registry import methods
from decobench.run.config import TrainConfig
from decobench.run.encoder_backbone import EncoderBackbone, ImageSet
from decobench.run.train import Trainer

SPEC = MethodSpec([16], {"race": 3, "gender": 2, "age": 4}, "race", ("age", "gender"))


def _spec(shape=(3, 16, 16)):
    return MethodSpec([16], {"race": 3, "gender": 2, "age": 4}, "race", ("age", "gender"), {"source_shape": shape})


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    race = torch.arange(n) % 3
    images = torch.randint(0, 256, (n, 16, 16, 3), generator=g, dtype=torch.uint8)
    images[:, :4, :4, 0] = (race * 100).to(torch.uint8)[:, None, None]  # race is readable from one corner
    labels = {"race": race, "gender": torch.arange(n) % 2, "age": torch.arange(n) % 4}
    data = ImageSet(images, labels)
    return data.subset(torch.arange(64)), data.subset(torch.arange(64, n))


def _trainer(name, params=None, steps=6):
    cls = methods.get(name)
    method = cls(_spec(), params)
    cfg = TrainConfig(lr=1e-3, max_steps=steps, batch_size=16, warmup_steps=0, eval_every=3, select_after=0.0)
    return Trainer(EncoderBackbone(SPEC, method, widths=(8, 16)), method, cfg, seed=0)


def test_baseline_and_ce_train_on_the_encoder():
    for name in ("baseline", "ce"):
        tr = _trainer(name)
        before = [p.detach().clone() for p in tr.backbone.params]
        summary = tr.fit(*_data())
        assert "val_utility_ce" in summary["history"][-1]
        assert not all(torch.equal(a, b) for a, b in zip(before, tr.backbone.params))
        assert tr.features(_data()[1]).shape == (32, 16)


def test_a_private_encoder_gets_exact_per_example_gradients_and_an_epsilon():
    tr = _trainer("ce_dp")
    train, val = _data()
    inp = tr._inputs(train, torch.arange(12), torch.Generator().manual_seed(0))
    samples, _ = tr._generator_grad_samples(inp, 1, "joint")
    ctx = tr._forward(inp)
    gen = tr.backbone.base_loss(ctx)[0] + sum(tr.method.losses(ctx)["generator"].values())
    for s, b in zip(samples, torch.autograd.grad(gen, tr.backbone.params)):
        assert torch.allclose(s.mean(0), b, atol=1e-6, rtol=1e-4)
    rec = tr.fit(train, val)["dp"]
    assert rec["private_players"] == ["adversary", "generator"] and 0 < rec["epsilon"] <= 5.01
    assert any(n.startswith("backbone.encoder.") for n in rec["private_parameters"])


def test_mtl_adv_dp_runs_its_phases_privately_and_schedules_beta():
    tr = _trainer("mtl_adv_dp", steps=12)
    summary = tr.fit(*_data())
    phases = [h["phase"] for h in summary["history"]]
    assert phases == ["pretrain_privacy", "pretrain_restoration", "adversarial", "adversarial"]  # evals at 3, 6, 9, 12
    betas = [h["beta"] for h in summary["history"]]
    assert betas[0] == pytest.approx(0.1) and all(b >= 0.3 - 1e-6 for b in betas[1:]) and max(betas) <= 0.5 + 1e-6
    rec = summary["dp"]
    assert rec["private_players"] == ["adversary"] and set(rec["non_private_players"]) == {"generator", "restorer"}
    assert rec["steps"] == sum(1 for s in range(1, 13) if s > 2 and not 4 < s <= 6)  # D steps: privacy + game phases


def test_adv_recon_moves_the_encoder_away_from_reconstructable_features():
    tr = _trainer("adv_recon", methods.get("adv_recon").Params(lambda1=1.0), steps=6)
    summary = tr.fit(*_data())
    assert "generator/neg_reconstruction" in summary["history"][-1] and "decoder/reconstruction" in summary["history"][-1]
