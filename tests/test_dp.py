"""DP-SGD done the way the DP community checks it: per-example gradients that add up to the batch gradient,
Poisson sampling, ε that Opacus recomputes from the recorded (z, q, steps, δ), a budget that grows with
steps, and a record of what the ε covers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import create_accountant
from torch import nn

from decobench.methods.base import DecouplingMethod, DPParams, OptimGroup
from decobench.methods.checks import interface_report
from decobench.registry import methods
from decobench.run.config import ConfigError, resolve
from decobench.run.dp import PrivateTraining, epsilon, poisson_batch, solve_noise_multiplier
from decobench.run.train import MethodInterfaceError
from tests.dp_bound import bound_violations
from tests.test_methods import _data, _trainer, spec

CE_DP = methods.get("ce_dp")


def test_per_example_gradients_add_up_to_the_batch_gradient():
    """Catches batch coupling and wrong reductions: mean_i g_i == grad of the batch-mean loss."""
    tr, base = _trainer(CE_DP, steps=2)
    train, _ = _data(base)
    g = torch.Generator().manual_seed(3)
    idx = torch.arange(24)
    inp = tr._inputs(train, idx, g)
    samples, aux = tr._generator_grad_samples(inp, 1, "joint")
    ctx = tr._forward(inp)
    assert torch.allclose(aux["prediction"], ctx.prediction, atol=1e-5)
    terms = tr.method.losses(ctx)
    gen = F.mse_loss(ctx.prediction, ctx.noise) + sum(terms["generator"].values())
    lora = [p for grp in tr.groups if grp.player == "generator" for p in grp.params]
    batch = torch.autograd.grad(gen, lora, retain_graph=True)
    for s, b in zip(samples, batch):
        assert s.shape == (24, *b.shape)
        assert torch.allclose(s.mean(0), b, atol=1e-6, rtol=1e-4)
    adv = list(tr.method.adversary.parameters())
    per = tr._player_grad_samples("adversary", ctx)
    for s, b in zip(per, torch.autograd.grad(sum(terms["adversary"].values()), adv)):
        assert torch.allclose(s.mean(0), b, atol=1e-6, rtol=1e-4)


def test_epsilon_is_what_opacus_recomputes_and_meets_the_target():
    tr, base = _trainer(CE_DP, CE_DP.Params(target_epsilon=2.0), steps=12, eval_every=6, select_after=0.0)
    rec = tr.fit(*_data(base))["dp"]
    acc = create_accountant(rec["accountant"])
    acc.history = [tuple(h) for h in rec["history"]]
    assert acc.get_epsilon(rec["delta"]) == pytest.approx(rec["epsilon"], rel=1e-9)
    assert 0.9 * 2.0 <= rec["epsilon"] <= 2.0 + 0.01  # z solved for the planned steps
    assert rec["sample_rate"] == pytest.approx(64 / 192) and rec["steps"] == 12 and rec["sampling"] == "poisson"
    assert rec["private_players"] == ["adversary", "generator"] and not rec["non_private_players"]
    assert len(rec["private_parameters"]) == 2 + len(tr.backbone.params)  # the adversary's fc and every LoRA tensor
    assert rec["selected_dp_steps"] <= rec["steps"] and "seed is secret" in rec["covers"]


def test_epsilon_grows_with_steps_and_falls_with_noise():
    one = epsilon("prv", [[1.0, 0.01, 500]], 1e-5)
    assert one < epsilon("prv", [[1.0, 0.01, 1000]], 1e-5)
    assert epsilon("prv", [[2.0, 0.01, 500]], 1e-5) < one
    assert epsilon("rdp", [[1.0, 0.01, 500]], 1e-5) >= one * 0.9  # RDP is looser than PRV, never far tighter
    assert epsilon("prv", [[0.0, 0.01, 5]], 1e-5) is None  # no noise: no privacy
    z = solve_noise_multiplier(DPParams(target_epsilon=5.0), 0.01, 1000)
    assert epsilon("prv", [[z, 0.01, 1000]], 1e-5) <= 5.0 + 0.01


def test_poisson_batches_vary_in_size_with_mean_qn():
    g = torch.Generator().manual_seed(0)
    sizes = torch.tensor([len(poisson_batch(1000, 0.05, g)) for _ in range(400)]).float()
    assert abs(sizes.mean() - 50) < 1.5 and sizes.std() > 4  # binomial(1000, 0.05): sd 6.9
    assert (poisson_batch(10, 1e-9, g).numel(), poisson_batch(10, 1.0, g).tolist()) == (0, list(range(10)))


def test_an_empty_poisson_batch_still_takes_a_noise_only_step():
    w = nn.Parameter(torch.zeros(3))
    dp = PrivateTraining(DPParams(target_epsilon=None, noise_multiplier=1.0), n_train=100, batch_size=10, dp_steps=1,
                         players={"adversary": [[w]]}, lr={"adversary": [0.1]}, weight_decay={"adversary": [0.0]},
                         warmup={}, non_private=[])
    dp.step(("adversary",), {"adversary": [w.new_zeros((0, 3))]})
    assert dp.steps == 1 and dp.history == [[1.0, 0.1, 1]] and w.abs().sum() > 0


def test_noise_is_seeded_and_moves_the_weights():
    """Same seed, same noise; noise on: the LoRA differs from the noiseless (clip-only) run."""
    runs = {}
    for key, params in (("a", CE_DP.Params(target_epsilon=None, noise_multiplier=1.0)),
                        ("b", CE_DP.Params(target_epsilon=None, noise_multiplier=1.0)),
                        ("clip", CE_DP.Params(target_epsilon=None, noise_multiplier=0.0))):
        tr, base = _trainer(CE_DP, params, steps=4, eval_every=4, select_after=0.0)
        summary = tr.fit(*_data(base))
        runs[key] = ([p.detach().clone() for p in tr.backbone.params], summary["dp"])
    assert all(torch.equal(x, y) for x, y in zip(runs["a"][0], runs["b"][0]))
    assert not all(torch.equal(x, y) for x, y in zip(runs["a"][0], runs["clip"][0]))
    assert runs["clip"][1]["epsilon"] is None and runs["a"][1]["epsilon"] > 0


class _PrivateAdversaryParams(DPParams):
    pass


class _PrivateAdversary(DecouplingMethod):
    """MTL-Adv-DP's shape: only the adversary is private; the LoRA is not (and is named as not covered)."""

    Params = _PrivateAdversaryParams

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.adversary["fc"] = nn.Linear(sum(spec.feature_dims), spec.n_sensitive)

    def optimizer_groups(self):
        return [OptimGroup("adversary", list(self.adversary.parameters()), dp=True, name="adversary")]

    def losses(self, ctx):
        ce = F.cross_entropy(self.adversary["fc"](ctx.features), ctx.sensitive_labels)
        return {"generator": {"neg": -0.1 * ce}, "adversary": {"ce": ce}}


def test_a_private_adversary_beside_a_non_private_generator_is_recorded_as_such():
    tr, base = _trainer(_PrivateAdversary, steps=6, eval_every=6, select_after=0.0)
    before = [p.detach().clone() for p in tr.backbone.params]
    rec = tr.fit(*_data(base))["dp"]
    assert rec["private_players"] == ["adversary"] and rec["non_private_players"] == ["generator"]
    assert "generator" in rec["covers"] and "not covered" in rec["covers"]
    assert rec["steps"] == 6 and math.isfinite(rec["epsilon"]) and rec["epsilon"] <= 5.01
    assert not all(torch.equal(a, b) for a, b in zip(before, tr.backbone.params))  # the LoRA stepped by AdamW


class _DPWithoutParams(DecouplingMethod):
    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.adversary["fc"] = nn.Linear(sum(spec.feature_dims), spec.n_sensitive)

    def optimizer_groups(self):
        return [OptimGroup("adversary", list(self.adversary.parameters()), dp=True)]

    def losses(self, ctx):
        return {"adversary": {"ce": F.cross_entropy(self.adversary["fc"](ctx.features), ctx.sensitive_labels)}}


class _HalfPrivate(_PrivateAdversary):
    def optimizer_groups(self):
        w, b = self.adversary["fc"].weight, self.adversary["fc"].bias
        return [OptimGroup("adversary", [w], dp=True), OptimGroup("adversary", [b], dp=False)]


def test_dp_interface_problems_are_reported():
    assert any("DPParams" in p for p in interface_report(_DPWithoutParams, spec()))
    assert any("wholly under DP-SGD" in p for p in interface_report(_HalfPrivate, spec()))
    with pytest.raises(MethodInterfaceError, match="DPParams"):
        _trainer(_DPWithoutParams)


def test_dp_settings_are_validated_by_field():
    with pytest.raises(ConfigError, match="exactly one of method.target_epsilon"):
        resolve("quick", CE_DP, "ce_dp", {"method.noise_multiplier": "1.0"})
    cfg, params = resolve("quick", CE_DP, "ce_dp", {"method.target_epsilon": "none", "method.noise_multiplier": "1.0"})
    assert params.noise_multiplier == 1.0 and cfg.method["target_epsilon"] is None
    with pytest.raises(ConfigError, match="method.delta"):
        resolve("quick", CE_DP, "ce_dp", {"method.delta": "2"})


class _DenoiseDPParams(DPParams):
    pass


class _DenoiseDP(DecouplingMethod):
    """Fine-tuning alone (the diffusion MSE), the LoRA under DP-SGD: the generator MIA's known answer."""

    Params = _DenoiseDPParams
    dp_backbone = True


def _mia_after_training(params, steps=150):
    """The tiny base's LoRA trained by the Trainer's DP path on 24 members (full Poisson batch, q = 1), then
    the package's loss attack (timestep chosen on 6 + 6 calibration examples, 18 + 18 scored) and the raw
    loss scores of all 24 + 24 at t = 100 for the ROC."""
    from decobench.attacks.mia_generator import attack_generator, calibration_generators, score_examples, unet_access
    from decobench.models.base import load_base
    from decobench.models.lora import lora_target_names
    from decobench.run.config import TrainConfig
    from decobench.run.stages import null_text
    from decobench.run.train import LatentSet, Trainer

    gens = calibration_generators(0, steps=0)  # members / non-members of synthfaces-a, null prompt, untrained
    members, nonmembers = gens["absent"].members, gens["absent"].nonmembers
    base = load_base("tiny-synthface")
    dims = [dict(base.unet.named_modules())[t].out_channels for t in lora_target_names(base.unet)]
    train = LatentSet(members.mean, members.std, members.text, {"race": torch.zeros(len(members), dtype=torch.long)})
    cfg = TrainConfig(lr=3e-2, weight_decay=0.0, max_steps=steps, batch_size=len(train), warmup_steps=0,
                      eval_every=steps, select_after=1.0)
    tr = Trainer(base, _DenoiseDP(spec(dims), params), cfg, seed=0)
    rec = tr.fit(train, train)["dp"]
    tr.backbone.remove()
    base.unet.eval()
    gen = unet_access(base.unet, base.scheduler_config, members, nonmembers, float(base.vae.config.scaling_factor),
                      null_text(base, "cpu"))
    metrics = attack_generator(gen, 18, 6, 4, 500, 0, names=("loss",)).metrics
    scores = [score_examples(gen, lat, np.arange(len(lat)), side, {"loss": (100,)}, 4)[0]["loss", 100]
              for side, lat in enumerate((members, nonmembers))]
    return metrics, rec, scores


@pytest.mark.slow
def test_dp_bounds_the_generator_mia_and_without_noise_it_leaks():
    """At ε 1: AUC's CI holds 0.5 and no ROC point violates TPR <= e^ε·FPR + δ beyond its Clopper-Pearson
    bounds (a weak check at 24 + 24 examples: only a strong leak can fail it). The same recipe with clipping
    and no noise (ε = ∞) lets the same attack find the members (AUC's CI above 0.5)."""
    private, rec, (pos, neg) = _mia_after_training(_DenoiseDPParams(target_epsilon=1.0))
    leaky, rec_l, (pos_l, neg_l) = _mia_after_training(_DenoiseDPParams(target_epsilon=None, noise_multiplier=0.0,
                                                                        max_grad_norm=1e6))
    auc_p, auc_l = private["privacy_mia_loss_auc"], leaky["privacy_mia_loss_auc"]
    assert rec["epsilon"] <= 1.01 and rec_l["epsilon"] is None
    assert auc_p["ci_includes_chance"], auc_p
    assert auc_l["ci"][0] > 0.5 and auc_l["value"] > auc_p["value"] + 0.15, (auc_l, auc_p)
    assert bound_violations(pos, neg, rec["epsilon"], rec["delta"]) == 0
    # the check has teeth at this size: fully separated scores (a strong leak) violate the ε-1 bound
    assert bound_violations(np.ones(24), np.zeros(24), rec["epsilon"], rec["delta"]) > 0


class _PrivateGeneratorModuleOnly(_PrivateAdversary):
    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.generator["scale"] = nn.Linear(1, 1)

    def optimizer_groups(self):
        return [OptimGroup("generator", list(self.generator.parameters()), dp=True),
                OptimGroup("adversary", list(self.adversary.parameters()), dp=True)]


class _SharedParameter(_PrivateAdversary):
    def optimizer_groups(self):
        ps = list(self.adversary.parameters())
        return [OptimGroup("adversary", ps, dp=True), OptimGroup("adversary", ps[:1], dp=False)]


def test_a_private_generator_module_needs_a_private_backbone_and_no_parameter_is_both():
    assert any("dp_backbone is False" in p for p in interface_report(_PrivateGeneratorModuleOnly, spec()))
    assert any("private and a non-private group" in p for p in interface_report(_SharedParameter, spec()))
