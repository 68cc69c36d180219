"""The decoupling game trainer (method interface v2) for every track, on a *backbone*.

A backbone is a track's trainable, released part: LoRA adapters on a diffusion UNet over cached latents
(:class:`~decobench.run.lora_backbone.LoraBackbone`, the data track, DECO-Bench §4.2, A.3) or a face
encoder with utility heads over images (the model track). Each step: the backbone's inputs -> its forward
pass -> a :class:`StepContext` -> the method's loss terms per player. The ``generator`` player (the
backbone's parameters + the method's generator modules) minimises the backbone's base loss (the diffusion
MSE; the utility heads' CE) + its terms; every other player minimises its own terms. Each player's gradient is taken
with respect to its own parameters only (``torch.autograd.grad``), then every player of the current
phase steps. A *shadow probe* (a linear head on detached features that the generator never fights)
is trained beside every method, so the sensitive attribute's readability on V compares across methods.

Checkpoint selection (why it cannot keep the least-decoupled model): a checkpoint is eligible only
after ``select_after`` x max_steps steps — by then the adversary game has run — and among eligible
evaluations the one with the lowest *full generator objective on V* (base loss + the method's generator
terms, fixed noise) is kept; early stopping counts patience only among eligible evaluations. The chosen
step is recorded. ``select_on=val_mse`` selects on the MSE alone (the old rule, for comparison).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm import tqdm

from decobench.methods.base import GENERATOR, OptimGroup, StepContext
from decobench.run.dp import PrivateTraining, per_example_grads, poisson_batch
from decobench.run.lora_backbone import LatentSet, LoraBackbone

__all__ = ["LatentSet", "Trainer", "NonFiniteLossError", "MethodInterfaceError", "interface_problems", "phase_at"]


class NonFiniteLossError(RuntimeError):
    pass


class MethodInterfaceError(Exception):
    """A method plugin breaks the interface (unregistered parameters, unknown players, DP groups...)."""


def interface_problems(method) -> list[str]:
    """Everything wrong with a method's players, optimiser groups and phases, all at once."""
    problems = []
    players = set(method.players)
    if GENERATOR not in players:
        problems.append(f"players must include {GENERATOR!r} (it owns the released backbone); got {sorted(players)}")
    groups = method.optimizer_groups()
    for g in groups:
        if g.player not in players:
            problems.append(f"optimizer group {g.name or '?'} names player {g.player!r}; players: {sorted(players)}")
    problems += _dp_problems(method, groups)
    grouped = {id(p) for g in groups for p in g.params}
    for name, p in method.named_parameters():
        if p.requires_grad and id(p) not in grouped:
            problems.append(f"parameter {name!r} requires grad but is in no optimizer group: put its module in a "
                            f"player's ModuleDict (self.generator[...] / self.adversary[...]) or return it from "
                            f"optimizer_groups()")
    phases = method.phases
    if not phases:
        problems.append("phases is empty")
    for ph in phases:
        if not set(ph.players) <= players:
            problems.append(f"phase {ph.name!r} steps unknown players {sorted(set(ph.players) - players)}")
        if not 0 < ph.fraction <= 1:
            problems.append(f"phase {ph.name!r} has fraction {ph.fraction}; it must be in (0, 1]")
    if phases and abs(sum(ph.fraction for ph in phases) - 1) > 1e-6:
        problems.append(f"phase fractions add up to {sum(ph.fraction for ph in phases)}, not 1")
    return problems


def _dp_problems(method, groups) -> list[str]:
    from decobench.methods.base import DPParams

    private = {g.player for g in groups if g.dp} | ({GENERATOR} if method.dp_backbone else set())
    problems = []
    if private and not isinstance(method.params, DPParams):
        problems.append(f"player(s) {sorted(private)} train under DP-SGD (dp=True / dp_backbone) but the method's "
                        f"Params do not subclass decobench.methods.base.DPParams (target ε or noise multiplier, δ, "
                        f"clipping norm, accountant)")
    for g in groups:
        if g.player in private and not g.dp:
            problems.append(f"optimizer group {g.name or g.player} of private player {g.player!r} has dp=False: a "
                            f"player trains wholly under DP-SGD or not at all"
                            + (" (dp_backbone makes the generator private)" if g.player == GENERATOR else ""))
    if any(g.dp and g.player == GENERATOR for g in groups) and not method.dp_backbone:
        problems.append("a generator group has dp=True but dp_backbone is False: the released backbone would train "
                        "without DP beside it; set dp_backbone = True (or keep the generator's groups non-private)")
    seen: dict[int, bool] = {}
    for g in groups:
        for prm in g.params:
            if seen.setdefault(id(prm), g.dp) != g.dp:
                problems.append(f"a parameter of group {g.name or g.player} is in a private and a non-private group: "
                                f"it would be updated without DP")
    return problems


class _Joint(torch.nn.Module):
    """The backbone's module and the method under one module, so ``functional_call`` can swap the private
    parameters of both (the LoRA, and e.g. CE+Mask's filter network inside the forward hook) for one example."""

    def __init__(self, backbone_module, method, fn):
        super().__init__()
        self.backbone, self.method, self._fn = backbone_module, method, fn

    def forward(self, *args):
        return self._fn(*args)


_TENSOR_FIELDS = ("latents", "noisy_latents", "timesteps", "noise", "prediction", "images")


def _one(example: dict) -> dict:
    """Give one vmapped example its batch dimension back (labels and feature lists included)."""
    return {k: _one(v) if isinstance(v, dict) else [t[None] for t in v] if isinstance(v, list) else v[None]
            for k, v in example.items()}


def phase_at(phases, step: int, max_steps: int):
    edge = 0.0
    for ph in phases:
        edge += ph.fraction * max_steps
        if step <= edge + 1e-9:
            return ph
    return phases[-1]


class Trainer:
    """``base``: a backbone, or a latent-diffusion base model (wrapped in a :class:`LoraBackbone`)."""

    def __init__(self, base, method, cfg, sensitive: str = "race", device="cpu", seed=0, log=print):
        self.method, self.cfg, self.device, self.log = method, cfg, device, log
        self.sensitive, self.seed = sensitive, seed
        self.backbone = base if hasattr(base, "base_loss") else LoraBackbone(base, cfg, method, device, seed)
        self.counts = dict(self.backbone.counts)
        self.method.to(device)
        self.probe = torch.nn.Linear(sum(self.backbone.dims), method.spec.n_sensitive).to(device)
        self.groups = self._groups()
        self._joint = _Joint(self.backbone.module, method, self._generator_loss_one)  # one functional_call namespace
        released = sum(p.numel() for p in self.backbone.params)
        for player in {g.player for g in self.groups}:
            n = sum(p.numel() for g in self.groups if g.player == player for p in g.params)
            self.counts[f"method_{player}_params"] = n - (released if player == GENERATOR else 0)

    def _groups(self) -> list[OptimGroup]:
        problems = interface_problems(self.method)
        if problems:
            raise MethodInterfaceError(f"method {type(self.method).__name__}: " + "; ".join(problems))
        return [OptimGroup(GENERATOR, self.backbone.params, dp=self.method.dp_backbone, name=self.backbone.name)] + [
            g for g in self.method.optimizer_groups() if g.params]

    def _optimisers(self):
        """AdamW per non-private player (and the shadow probe); the private players' groups go to DP-SGD."""
        from diffusers.optimization import get_scheduler

        cfg, opts, private = self.cfg, {}, {}
        for player in dict.fromkeys(g.player for g in self.groups):
            base_lr = cfg.lr if player == GENERATOR else cfg.adversary_lr
            pg = [{"params": g.params, "lr": base_lr * g.lr_scale,
                   "weight_decay": cfg.weight_decay if g.weight_decay is None else g.weight_decay}
                  for g in self.groups if g.player == player]
            if any(g.dp for g in self.groups if g.player == player):
                private[player] = pg
                continue
            opt = torch.optim.AdamW(pg)
            warm = cfg.warmup_steps if player == GENERATOR else 0
            opts[player] = (opt, get_scheduler("constant_with_warmup", opt, num_warmup_steps=warm),
                            [p for g in pg for p in g["params"]])
        probe_opt = torch.optim.AdamW(self.probe.parameters(), lr=cfg.adversary_lr, weight_decay=cfg.weight_decay)
        return opts, private, probe_opt

    def _private_training(self, n_train: int, private: dict, non_private: list[str]) -> PrivateTraining:
        cfg, phases = self.cfg, self.method.phases
        dp_steps = sum(1 for s in range(1, cfg.max_steps + 1)
                       if set(phase_at(phases, s, cfg.max_steps).players) & set(private))
        return PrivateTraining(
            self.method.params, n_train, cfg.batch_size, dp_steps,
            players={p: [g["params"] for g in pg] for p, pg in private.items()},
            lr={p: [g["lr"] for g in pg] for p, pg in private.items()},
            weight_decay={p: [g["weight_decay"] for g in pg] for p, pg in private.items()},
            warmup={GENERATOR: cfg.warmup_steps}, non_private=non_private, device=self.device, seed=self.seed)

    def _inputs(self, data, idx, g, training=True, **kw) -> dict:
        return self.backbone.inputs(data, idx, g, training, **kw)

    def _forward(self, inp: dict, step=0, phase="joint", training=True) -> StepContext:
        return self._step_context(inp, self.backbone.forward(inp), step, phase, training)

    def _step_context(self, inp, out: dict, step=0, phase="joint", training=True) -> StepContext:
        spatial = out["spatial"]
        return StepContext(**{k: v for k, v in out.items() if k != "spatial"}, spatial=spatial,
                           pooled=[F.adaptive_avg_pool2d(h, 1).flatten(1) for h in spatial], labels=inp["labels"],
                           sensitive=self.sensitive, step=step, phase=phase, training=training)

    def _context(self, data, idx, g, step=0, phase="joint", training=True, **kw):
        return self._forward(self._inputs(data, idx, g, training, **kw), step, phase, training)

    def _terms(self, ctx) -> tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
        base, ctx.base_losses = self.backbone.base_loss(ctx)
        terms = self.method.losses(ctx) or {}
        unknown = set(terms) - set(self.method.players)
        if unknown:
            raise MethodInterfaceError(f"method {type(self.method).__name__} returned losses for unknown players "
                                       f"{sorted(unknown)}; players: {sorted(self.method.players)}")
        return base, terms

    @torch.no_grad()
    def evaluate(self, val: LatentSet) -> dict:
        """On V with fixed noise: the base loss, the full generator objective, adversary and probe accuracy."""
        self.backbone.train(False)
        g = torch.Generator().manual_seed(1234)
        key = f"val_{self.backbone.base_loss_name}"
        sums = {key: 0.0, "val_generator_objective": 0.0, "adv_ok": 0, "probe_ok": 0}
        for i in range(0, len(val), 256):
            idx = torch.arange(i, min(i + 256, len(val)))
            ctx = self._context(val, idx, g, training=False)
            base, terms = self._terms(ctx)
            gen = base + sum(terms.get(GENERATOR, {}).values(), torch.zeros((), device=base.device))
            y = ctx.sensitive_labels
            sums[key] += base.item() * len(idx)
            sums["val_generator_objective"] += gen.item() * len(idx)
            logits = self.method.adversary_logits(ctx.pooled)
            if logits is not None:
                sums["adv_ok"] += (logits.argmax(1) == y).sum().item()
            sums["probe_ok"] += (self.probe(ctx.features).argmax(1) == y).sum().item()
        self.backbone.train()
        n = len(val)
        return {key: sums[key] / n, "val_generator_objective": sums["val_generator_objective"] / n,
                "val_adversary_acc": sums["adv_ok"] / n if self.method.has_adversary() else None,
                "val_shadow_probe_acc": sums["probe_ok"] / n}

    def fit(self, train: LatentSet, val: LatentSet) -> dict:
        cfg = self.cfg
        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        opts, private, probe_opt = self._optimisers()
        dp = self._private_training(len(train), private, list(opts)) if private else None
        phases = self.method.phases
        self.backbone.train()
        self.method.train()
        select_from = math.ceil(cfg.select_after * cfg.max_steps)
        best, best_state, best_step, best_dp_steps, since, history = math.inf, None, None, None, 0, []
        step_losses: dict[str, list[float]] = {}
        bar = tqdm(range(1, cfg.max_steps + 1), desc=f"train {self.backbone.name}", unit="step", leave=False)
        key = f"val_{self.backbone.base_loss_name}"
        steps_per_epoch = max(1, len(train) // cfg.batch_size)
        for step in bar:
            phase = phase_at(phases, step, cfg.max_steps)
            if dp is None:  # non-private runs: a fixed-size batch drawn with replacement
                idx = torch.randint(0, len(train), (min(cfg.batch_size, len(train)),), generator=g)
            else:  # DP-SGD: Poisson sampling with rate q, as the accountant assumes
                idx = poisson_batch(len(train), dp.sample_rate, dp.sampler or g)
            private_now = tuple(p for p in private if p in phase.players)
            if len(idx):
                flat = self._train_step(train, idx, g, step, phase, (step - 1) // steps_per_epoch, opts, probe_opt,
                                        dp, private_now)
                for k, v in flat.items():
                    step_losses.setdefault(k, []).append(v)
            elif private_now:  # an empty Poisson batch still takes its (noise-only) DP step
                dp.step(private_now, None)
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                ev = self.evaluate(val)
                ev.update({"step": step, "phase": phase.name, **{k: float(np.mean(v)) for k, v in step_losses.items()}})
                step_losses = {}
                ev.update(self.method.on_evaluate({**ev, "progress": step / cfg.max_steps}) or {})
                history.append(ev)
                bar.set_postfix({key: f"{ev[key]:.4f}", "probe": f"{ev['val_shadow_probe_acc']:.2f}"})
                if step < select_from:
                    continue
                score = ev["val_generator_objective" if cfg.select_on == "generator_objective" else key]
                if score < best - cfg.min_delta:
                    best, best_step, since = score, step, 0
                    best_state = self._snapshot()
                    best_dp_steps = dp.steps if dp else None
                else:
                    since += 1
                    if since >= cfg.patience:
                        break
        if best_state is not None:
            self._restore(best_state)
        self.method.eval()
        summary = {"history": history, "selected_step": best_step, "selected_score": best, "select_on": cfg.select_on,
                   "select_from_step": select_from, "steps": step, "parameter_counts": self.counts}
        if dp is not None:
            summary["dp"] = dp.record(self._private_names(private), best_dp_steps)
        return summary

    def _train_step(self, train, idx, g, step, phase, epoch, opts, probe_opt, dp, private_now) -> dict[str, float]:
        """One step: the forward pass (per example when the generator is private), every player's loss, the
        non-private players' AdamW steps and the private players' DP-SGD step, all from the same batch."""
        inp = self._inputs(train, idx, g)
        samples = {}
        if GENERATOR in private_now:
            samples[GENERATOR], out = self._generator_grad_samples(inp, step, phase.name)
            ctx = self._step_context(inp, out, step, phase.name)
        else:
            ctx = self._forward(inp, step, phase.name)
        ctx.epoch = epoch
        base, terms = self._terms(ctx)
        totals = {p: sum(terms.get(p, {}).values(), torch.zeros((), device=base.device)) for p in self.method.players}
        totals[GENERATOR] = totals[GENERATOR] + base
        known = ctx.sensitive_labels >= 0  # rows without the label (DPLH's non-face patches) train no probe
        probe_logits = self.probe(ctx.features.detach()[known])
        probe_loss = (F.cross_entropy(probe_logits, ctx.sensitive_labels[known]) if len(probe_logits)
                      else probe_logits.sum())
        for p, v in [*totals.items(), ("shadow_probe", probe_loss)]:
            if not torch.isfinite(v):
                raise NonFiniteLossError(
                    f"non-finite {p} loss ({v.item()}) at step {step}; nothing was saved. Lower --set lr "
                    f"(now {self.cfg.lr}) or the method's loss weights (--set method.<key>=...)")
        for p in private_now:
            if p != GENERATOR:
                samples[p] = self._player_grad_samples(p, ctx)
        stepping = [p for p in opts if p in phase.players]
        grads = {}
        for k, p in enumerate(stepping):
            grads[p] = torch.autograd.grad(totals[p], opts[p][2], retain_graph=k < len(stepping) - 1, allow_unused=True)
        for p in stepping:  # every player of the phase steps on gradients from the same forward pass
            opt, sched, params = opts[p]
            for prm, gr in zip(params, grads[p]):
                prm.grad = gr
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        if private_now:
            dp.step(private_now, samples)
        probe_opt.zero_grad(set_to_none=True)
        probe_loss.backward()
        probe_opt.step()
        flat = {self.backbone.base_loss_name: base, "shadow_probe_ce": probe_loss, **{f"{p}/{k}": v for p, t in terms.items() for k, v in t.items()}}
        return {k: float(v.detach()) for k, v in flat.items()}

    # -- per-example gradients of private players (DP-SGD) ------------------------------------------------
    def _named(self, params) -> list[str]:
        names = {id(q): n for n, q in self._joint.named_parameters()}
        return [names[id(q)] for q in params]

    def _private_names(self, private: dict) -> dict[str, list[str]]:
        return {p: self._named([q for g in pg for q in g["params"]]) for p, pg in private.items()}

    def _generator_grad_samples(self, inp, step, phase):
        """Per-example gradients of the generator's loss (base loss + its terms) w.r.t. the backbone's and the
        generator's method modules' parameters: vmap over examples of the backbone's forward (with the LoRA
        hooks) and ``method.losses`` on a batch of one. Returns them with the forward's outputs (detached)."""
        params = [q for g in self.groups if g.player == GENERATOR for q in g.params]
        names = self._named(params)

        def loss_one(prm, one):
            return functional_call(self._joint, prm, (_one(one), step, phase))
        grads, aux = per_example_grads(loss_one, {n: q.detach() for n, q in zip(names, params)}, inp)
        return [grads[n] for n in names], aux

    def _generator_loss_one(self, one, step, phase):
        out = self.backbone.forward(one)
        base, terms = self._terms(self._step_context(one, out, step, phase))
        loss = base + sum(terms.get(GENERATOR, {}).values())
        return loss, {k: [h.detach()[0] for h in v] if isinstance(v, list) else v.detach()[0] for k, v in out.items()}

    def _player_grad_samples(self, player, ctx):
        """Per-example gradients of a private non-generator player's terms w.r.t. its own parameters, on the
        step's (detached) context: the player's gradient never reaches the backbone."""
        params = [q for g in self.groups if g.player == player for q in g.params]
        names = [n.removeprefix("method.") for n in self._named(params)]
        out = {k: getattr(ctx, k).detach() for k in _TENSOR_FIELDS if getattr(ctx, k) is not None}
        batch = {"labels": ctx.labels, "out": {**out, "spatial": [h.detach() for h in ctx.spatial]}}

        def loss_one(prm, one):
            one = _one(one)
            c = self._step_context(one, one["out"], ctx.step, ctx.phase)
            c.epoch = ctx.epoch
            loss = sum((functional_call(self.method, prm, (c,)) or {}).get(player, {}).values())
            return loss, loss.detach()
        grads, _ = per_example_grads(loss_one, {n: q.detach() for n, q in zip(names, params)}, batch)
        return [grads[n] for n in names]

    def _snapshot(self):
        return {"backbone": [p.detach().clone() for p in self.backbone.params],
                "method": copy.deepcopy(self.method.state_dict()), "probe": copy.deepcopy(self.probe.state_dict())}

    def _restore(self, s):
        with torch.no_grad():
            for p, v in zip(self.backbone.params, s["backbone"]):
                p.copy_(v)
        self.method.load_state_dict(s["method"])
        self.probe.load_state_dict(s["probe"])

    def features(self, data, *args, **kw) -> torch.Tensor:
        """The backbone's features of a split, as attacks read them (see the backbone's ``features``)."""
        return self.backbone.features(self, data, *args, **kw)
