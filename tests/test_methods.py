"""Methods through interface v2: registration makes them checked; players, groups and selection behave."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from decobench.methods.base import DecouplingMethod, MethodSpec, Phase
from decobench.methods.checks import interface_report, synthetic_context
from decobench.models.lora import lora_target_names
from decobench.registry import methods
from decobench.run.config import TrainConfig
from decobench.run.train import LatentSet, MethodInterfaceError, Trainer
from tests.tiny_models import tiny_base

ALL = methods.names()
N_CLASSES = {"race": 5, "gender": 2, "age": 9}


def spec(dims=(8, 16, 16), sensitive="race"):
    return MethodSpec(list(dims), dict(N_CLASSES), sensitive, tuple(a for a in N_CLASSES if a != sensitive))


@pytest.mark.parametrize("name", ALL)
def test_every_registered_method_passes_the_interface_checks(name):
    assert interface_report(methods.get(name), spec()) == []


def test_ce_generator_term_is_the_negative_adversary_ce():
    m = methods.get("ce")(spec((4, 4)))
    terms = m.losses(synthetic_context(spec((4, 4))))
    assert torch.allclose(terms["generator"]["neg_adversary_ce"], -terms["adversary"]["adversary_ce"])


def test_ce_mask_keeps_40_percent_and_its_fgn_trains_through_a_lora():
    m = methods.get("ce_mask")(spec((10, 4)))
    h = torch.randn(3, 10, 4, 4, requires_grad=True)
    out = m.transform_first(h)
    assert ((m.last_mask > 0.5).sum(1) == 4).all()
    out.sum().backward()
    named = dict(m.generator["fgn"].named_parameters())
    lora = [p for n, p in named.items() if "lora_" in n]
    assert lora and all(p.requires_grad and p.grad is not None for p in lora)  # A.3: a LoRA on the FGN's layer
    assert all(not p.requires_grad for n, p in named.items() if "lora_" not in n)  # the FC under it is frozen
    trained = {id(p) for g in m.optimizer_groups() if g.player == "generator" for p in g.params}
    assert trained == {id(p) for p in lora}
    full = methods.get("ce_mask")(spec((10, 4)), methods.get("ce_mask").Params(fgn_lora_rank=0))
    assert sum(p.numel() for g in full.optimizer_groups() if g.player == "generator" for p in g.params) == 110


def _separation(x, y):
    cents = torch.stack([x[y == k].mean(0) for k in y.unique()])
    within = torch.stack([(x[y == k] - cents[i]).norm(dim=1).mean() for i, k in enumerate(y.unique())]).mean()
    return float(torch.pdist(cents).mean() / within)


@pytest.mark.parametrize("triplets", ["semihard", "all"])
def test_metric_swapped_triplets_pull_classes_together(triplets):
    cls = methods.get("metric")
    s = MethodSpec([6], {"race": 3, "gender": 2, "age": 9})
    m = cls(s, cls.Params(triplets=triplets))
    torch.manual_seed(0)
    race = torch.arange(60) % 3
    x = (F.one_hot(race, 6).float() * 0.6 + 0.3 * torch.randn(60, 6)).requires_grad_()
    before = _separation(x.detach(), race)
    opt = torch.optim.SGD([x], lr=0.2)
    ctx = synthetic_context(s, batch=60)
    ctx.labels["race"] = race
    for _ in range(60):
        opt.zero_grad()
        ctx.pooled = [x]
        m.losses(ctx)["generator"]["swapped_triplet"].backward()
        opt.step()
    assert _separation(x.detach(), race) < 0.6 * before


def test_semihard_miner_finds_nothing_once_classes_are_apart():
    cls = methods.get("metric")
    s = MethodSpec([6], {"race": 2, "gender": 2, "age": 9})
    ctx = synthetic_context(s, batch=24)
    ctx.labels["race"] = torch.tensor([0, 1] * 12)
    ctx.pooled = [F.one_hot(ctx.labels["race"], 6).float() * 5]
    assert cls(s).losses(ctx)["generator"]["swapped_triplet"] == 0
    assert cls(s, cls.Params(triplets="all")).losses(ctx)["generator"]["swapped_triplet"] > 0


# -- the training loop -----------------------------------------------------------------------------

def _data(base, n=256):
    torch.manual_seed(0)
    race = torch.arange(n) % 5
    # the sensitive signal sits in the image latents (two channels' means encode race); prompts are empty
    mean = torch.randn(n, 4, 8, 8) * 0.5
    mean[:, :2] += (race.float()[:, None, None, None] - 2) * 2.5
    text = base.text_encoder(base.tokenizer([""] * n, padding="max_length", max_length=16,
                                            return_tensors="pt").input_ids)[0].detach()
    labels = {"race": race, "gender": torch.arange(n) % 2, "age": torch.arange(n) % 9}
    data = LatentSet(mean, torch.full_like(mean, 0.05), text, labels)
    return data.subset(torch.arange(192)), data.subset(torch.arange(192, n))


def _trainer(method_cls, params=None, steps=120, **cfg_kw):
    base = tiny_base(seed=0)
    dims = [dict(base.unet.named_modules())[t].out_channels for t in lora_target_names(base.unet)]
    method = method_cls(spec(dims), params)
    cfg = TrainConfig(**{"lr": 3e-3, "adversary_lr": 1e-2, "max_steps": steps, "batch_size": 64, "warmup_steps": 5,
                         "eval_every": steps, "patience": 10, **cfg_kw})
    return Trainer(base, method, cfg, seed=0), base


def _fit(name, steps=120, params=None, **kw):
    tr, _ = _trainer(methods.get(name), params, steps=steps, **kw)
    train, val = _data(tr.backbone.base)
    summary = tr.fit(train, val)
    return tr.evaluate(val), summary


@pytest.mark.slow
def test_adversary_accuracy_falls_for_ce_and_ce_mask_vs_baseline():
    base_ev, _ = _fit("baseline")
    baseline_acc = base_ev["val_shadow_probe_acc"]  # the same linear head, trained the same way, not fought
    assert baseline_acc > 0.45  # chance 0.2
    for name, weight in (("ce", 3.0), ("ce_mask", 1.0)):
        ev, _ = _fit(name, params=methods.get(name).Params(adv_weight=weight))
        assert ev["val_adversary_acc"] < baseline_acc - 0.15, (name, ev, baseline_acc)


def test_gradient_checkpointing_changes_memory_not_what_is_trained():
    """``decobench run --gradient-checkpointing`` is an execution option: the same LoRA, to the last bit."""
    weights = []
    for checkpointing in (False, True):
        tr, base = _trainer(methods.get("ce_mask"), steps=6)
        if checkpointing:
            base.unet.enable_gradient_checkpointing()
        assert base.unet.is_gradient_checkpointing == checkpointing
        tr.fit(*_data(base))
        weights.append([p.detach().clone() for p in tr.backbone.params])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_selection_never_keeps_a_checkpoint_before_the_game_has_run():
    """Old rule (lowest V-MSE) kept step 100 of 400 for ce; now only steps >= select_after are eligible."""
    _, summary = _fit("ce", steps=80, eval_every=10, select_after=0.5, patience=2)
    evals = [h["step"] for h in summary["history"]]
    assert summary["selected_step"] >= 40 and summary["selected_step"] > evals[0]
    assert summary["select_on"] == "generator_objective"


class _BareParameter(DecouplingMethod):
    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.scale = nn.Parameter(torch.ones(()))  # in no player: v1 never optimised it, silently

    def losses(self, ctx):
        return {"generator": {"x": self.scale * ctx.features.pow(2).mean()}}


def test_a_parameter_outside_every_player_is_an_error_not_silently_frozen():
    problems = interface_report(_BareParameter, spec())
    assert any("'scale'" in p and "no optimizer group" in p for p in problems)
    with pytest.raises(MethodInterfaceError, match="scale"):
        _trainer(_BareParameter)


class _AdversaryOnly(DecouplingMethod):
    """Only an adversary term, computed on live (not detached) features: it must still not move the LoRA."""

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.adversary["fc"] = nn.Linear(sum(spec.feature_dims), spec.n_sensitive)

    def losses(self, ctx):
        return {"adversary": {"ce": F.cross_entropy(self.adversary["fc"](ctx.features), ctx.sensitive_labels)}}


def test_a_players_terms_only_move_its_own_parameters():
    runs = []
    for cls in (methods.get("baseline"), _AdversaryOnly):
        tr, _ = _trainer(cls, steps=20)
        train, val = _data(tr.backbone.base)
        tr.fit(train, val)
        runs.append([p.detach().clone() for p in tr.backbone.params])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


class _Phased(DecouplingMethod):
    """Adversary pretraining, then the game: the generator must not step in the first phase."""

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.adversary["fc"] = nn.Linear(sum(spec.feature_dims), spec.n_sensitive)

    @property
    def phases(self):
        return [Phase("pretrain_adversary", 0.5, ("adversary",)), Phase("joint", 0.5, ("generator", "adversary"))]

    def losses(self, ctx):
        ce = F.cross_entropy(self.adversary["fc"](ctx.features), ctx.sensitive_labels)
        return {"generator": {"neg": -ce}, "adversary": {"ce": ce}}


class _AdversaryPhaseOnly(_Phased):
    @property
    def phases(self):
        return [Phase("pretrain_adversary", 1.0, ("adversary",))]


def test_phases_decide_who_steps():
    tr, _ = _trainer(_AdversaryPhaseOnly, steps=6, eval_every=3, select_after=0.0)
    before = [p.detach().clone() for p in tr.backbone.params]
    fc_before = tr.method.adversary["fc"].weight.detach().clone()
    train, val = _data(tr.backbone.base)
    tr.fit(train, val)
    assert all(torch.equal(a, b) for a, b in zip(before, tr.backbone.params))  # the generator never stepped
    assert not torch.equal(fc_before, tr.method.adversary["fc"].weight)
    tr, _ = _trainer(_Phased, steps=10, eval_every=5, select_after=0.0)
    assert [h["phase"] for h in tr.fit(*_data(tr.backbone.base))["history"]] == ["pretrain_adversary", "joint"]


