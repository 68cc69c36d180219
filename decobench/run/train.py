"""LoRA decoupling training (DECO-Bench §4.2, A.3) through method interface v2, on cached latents.

Each step: noisy latents -> UNet (LoRA features hooked) -> a :class:`StepContext` -> the method's loss
terms per player. The ``generator`` player (LoRA adapters + the method's generator modules) minimises
diffusion MSE + its terms; every other player minimises its own terms. Each player's gradient is taken
with respect to its own parameters only (``torch.autograd.grad``), then every player of the current
phase steps. A *shadow probe* (a linear head on detached features that the generator never fights)
is trained beside every method, so the sensitive attribute's readability on V compares across methods.

Checkpoint selection (why it cannot keep the least-decoupled model): a checkpoint is eligible only
after ``select_after`` x max_steps steps — by then the adversary game has run — and among eligible
evaluations the one with the lowest *full generator objective on V* (MSE + the method's generator
terms, fixed noise) is kept; early stopping counts patience only among eligible evaluations. The chosen
step is recorded. ``select_on=val_mse`` selects on the MSE alone (the old rule, for comparison).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm import tqdm

from decobench.methods.base import GENERATOR, OptimGroup, StepContext
from decobench.models.lora import LoraFeatures, add_lora, parameter_counts
from decobench.run.dp import PrivateTraining, per_example_grads, poisson_batch


class NonFiniteLossError(RuntimeError):
    pass


class MethodInterfaceError(Exception):
    """A method plugin breaks the interface (unregistered parameters, unknown players, DP groups...)."""


@dataclass
class LatentSet:
    """Frozen inputs of one split: VAE posterior mean/std (unscaled), text states, every label."""

    mean: torch.Tensor
    std: torch.Tensor
    text: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.mean)

    def subset(self, idx) -> "LatentSet":
        return LatentSet(self.mean[idx], self.std[idx], self.text[idx], {k: v[idx] for k, v in self.labels.items()})

    @staticmethod
    def concat(sets: list["LatentSet"]) -> "LatentSet":
        keys = set.intersection(*(set(s.labels) for s in sets))
        return LatentSet(torch.cat([s.mean for s in sets]), torch.cat([s.std for s in sets]),
                         torch.cat([s.text for s in sets]), {k: torch.cat([s.labels[k] for s in sets]) for k in keys})


def interface_problems(method) -> list[str]:
    """Everything wrong with a method's players, optimiser groups and phases, all at once."""
    problems = []
    players = set(method.players)
    if GENERATOR not in players:
        problems.append(f"players must include {GENERATOR!r} (it owns the LoRA); got {sorted(players)}")
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
    return problems


class _Joint(torch.nn.Module):
    """The UNet and the method under one module, so ``functional_call`` can swap the private parameters of
    both (the LoRA, and e.g. CE+Mask's filter network inside the forward hook) for one example's pass."""

    def __init__(self, unet, method, fn):
        super().__init__()
        self.unet, self.method, self._fn = unet, method, fn

    def forward(self, *args):
        return self._fn(*args)


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
    def __init__(self, base, method, cfg, sensitive: str = "race", device="cpu", seed=0, log=print):
        from diffusers import DDPMScheduler

        self.base, self.method, self.cfg, self.device, self.log = base, method, cfg, device, log
        self.sensitive, self.seed = sensitive, seed
        sc = {k: v for k, v in base.scheduler_config.items() if not k.startswith("_")}
        self.sched = DDPMScheduler.from_config(sc)
        self.scaling = base.vae.config.scaling_factor
        base.freeze_frozen_parts()
        torch.manual_seed(seed)  # the LoRA's initialisation depends on the seed alone, not on the method
        self.targets = add_lora(base.unet, rank=cfg.lora_rank)
        self.counts = parameter_counts(base.unet)
        self.hooks = LoraFeatures(base.unet, self.targets, method.transform_first if method.uses_transform() else None)
        self.method.to(device)
        self.probe = torch.nn.Linear(sum(self.hooks.dims), method.spec.n_sensitive).to(device)
        self.lora_params = [p for p in base.unet.parameters() if p.requires_grad]
        self.groups = self._groups()
        self._joint = _Joint(base.unet, method, self._generator_loss_one)  # one namespace for functional_call
        if method.dp_backbone and not str(device).startswith("cuda"):
            # per-example UNet passes under vmap: torch's CPU SDPA has no batching rule (a per-example fallback
            # loop); diffusers' math attention is vmap-native, 1.41x vs 1.56x the non-DP step
            # (benchmarks/results/dp_step_cpu.json)
            from diffusers.models.attention_processor import AttnProcessor

            base.unet.set_attn_processor(AttnProcessor())
        for player in {g.player for g in self.groups}:
            n = sum(p.numel() for g in self.groups if g.player == player for p in g.params)
            self.counts[f"method_{player}_params"] = n - (self.counts["lora_trainable"] if player == GENERATOR else 0)

    def _groups(self) -> list[OptimGroup]:
        problems = interface_problems(self.method)
        if problems:
            raise MethodInterfaceError(f"method {type(self.method).__name__}: " + "; ".join(problems))
        return [OptimGroup(GENERATOR, self.lora_params, dp=self.method.dp_backbone, name="lora")] + [
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

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(self.device).startswith("cuda"))

    def _inputs(self, lat: LatentSet, idx, g, training=True, timestep=None, text=None) -> dict:
        """One batch's inputs: clean latents (a posterior sample when training), noise, timesteps, noisy
        latents, text states and labels, drawn from ``g`` in a fixed order."""
        dev = self.device
        mean, std = lat.mean[idx].to(dev).float(), lat.std[idx].to(dev).float()
        x0 = (mean + std * torch.randn(mean.shape, generator=g).to(dev)) * self.scaling if training else mean * self.scaling
        noise = torch.randn(x0.shape, generator=g).to(dev)
        if timestep is None:
            t = torch.randint(0, self.sched.config.num_train_timesteps, (len(idx),), generator=g).to(dev)
        else:
            t = torch.full((len(idx),), timestep, dtype=torch.long, device=dev)
        states = (lat.text[idx] if text is None else text.expand(len(idx), -1, -1)).to(dev).float()
        return {"latents": x0, "noise": noise, "timesteps": t, "noisy_latents": self.sched.add_noise(x0, noise, t),
                "text": states, "labels": {k: v[idx].to(dev) for k, v in lat.labels.items()}}

    def _forward(self, inp: dict, step=0, phase="joint", training=True) -> StepContext:
        with self._autocast():
            pred = self.base.unet(inp["noisy_latents"], inp["timesteps"], inp["text"]).sample
        spatial, pooled = self.hooks.pop()
        return self._step_context(inp, pred.float(), [h.float() for h in spatial], step, phase, training)

    def _step_context(self, inp, prediction, spatial, step=0, phase="joint", training=True) -> StepContext:
        return StepContext(latents=inp["latents"], noisy_latents=inp["noisy_latents"], timesteps=inp["timesteps"],
                           noise=inp["noise"], prediction=prediction, spatial=spatial,
                           pooled=[F.adaptive_avg_pool2d(h, 1).flatten(1) for h in spatial], labels=inp["labels"],
                           sensitive=self.sensitive, step=step, phase=phase, training=training)

    def _context(self, lat: LatentSet, idx, g, step=0, phase="joint", training=True, timestep=None, text=None):
        return self._forward(self._inputs(lat, idx, g, training, timestep, text), step, phase, training)

    def _terms(self, ctx) -> tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
        mse = F.mse_loss(ctx.prediction, ctx.noise)
        terms = self.method.losses(ctx) or {}
        unknown = set(terms) - set(self.method.players)
        if unknown:
            raise MethodInterfaceError(f"method {type(self.method).__name__} returned losses for unknown players "
                                       f"{sorted(unknown)}; players: {sorted(self.method.players)}")
        return mse, terms

    @torch.no_grad()
    def evaluate(self, val: LatentSet) -> dict:
        """On V with fixed noise: diffusion MSE, the full generator objective, adversary and probe accuracy."""
        self.base.unet.eval()
        g = torch.Generator().manual_seed(1234)
        sums = {"val_mse": 0.0, "val_generator_objective": 0.0, "adv_ok": 0, "probe_ok": 0}
        for i in range(0, len(val), 256):
            idx = torch.arange(i, min(i + 256, len(val)))
            ctx = self._context(val, idx, g, training=False)
            mse, terms = self._terms(ctx)
            gen = mse + sum(terms.get(GENERATOR, {}).values(), torch.zeros((), device=mse.device))
            y = ctx.sensitive_labels
            sums["val_mse"] += mse.item() * len(idx)
            sums["val_generator_objective"] += gen.item() * len(idx)
            logits = self.method.adversary_logits(ctx.pooled)
            if logits is not None:
                sums["adv_ok"] += (logits.argmax(1) == y).sum().item()
            sums["probe_ok"] += (self.probe(ctx.features).argmax(1) == y).sum().item()
        self.base.unet.train()
        n = len(val)
        return {"val_mse": sums["val_mse"] / n, "val_generator_objective": sums["val_generator_objective"] / n,
                "val_adversary_acc": sums["adv_ok"] / n if self.method.has_adversary() else None,
                "val_shadow_probe_acc": sums["probe_ok"] / n}

    def fit(self, train: LatentSet, val: LatentSet) -> dict:
        cfg = self.cfg
        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        opts, private, probe_opt = self._optimisers()
        dp = self._private_training(len(train), private, list(opts)) if private else None
        phases = self.method.phases
        self.base.unet.train()
        self.method.train()
        select_from = math.ceil(cfg.select_after * cfg.max_steps)
        best, best_state, best_step, best_dp_steps, since, history = math.inf, None, None, None, 0, []
        step_losses: dict[str, list[float]] = {}
        bar = tqdm(range(1, cfg.max_steps + 1), desc="train LoRA", unit="step", leave=False)
        steps_per_epoch = max(1, len(train) // cfg.batch_size)
        for step in bar:
            phase = phase_at(phases, step, cfg.max_steps)
            if dp is None:  # non-private runs: a fixed-size batch drawn with replacement
                idx = torch.randint(0, len(train), (min(cfg.batch_size, len(train)),), generator=g)
            else:  # DP-SGD: Poisson sampling with rate q, as the accountant assumes
                idx = poisson_batch(len(train), dp.sample_rate, g)
            private_now = tuple(p for p in private if p in phase.players)
            if len(idx):
                flat = self._train_step(train, idx, g, step, phase, (step - 1) // steps_per_epoch, opts, probe_opt,
                                        dp, private_now)
                for k, v in flat.items():
                    step_losses.setdefault(k, []).append(v)
            elif private_now:  # an empty Poisson batch still takes its (noise-only) DP step
                dp.step(private_now, {p: [q.new_zeros((0, *q.shape)) for grp in dp.players[p] for q in grp]
                                      for p in private_now})
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                ev = self.evaluate(val)
                ev.update({"step": step, "phase": phase.name, **{k: float(np.mean(v)) for k, v in step_losses.items()}})
                step_losses = {}
                history.append(ev)
                bar.set_postfix(val_mse=f"{ev['val_mse']:.4f}", probe=f"{ev['val_shadow_probe_acc']:.2f}")
                if step < select_from:
                    continue
                score = ev["val_generator_objective" if cfg.select_on == "generator_objective" else "val_mse"]
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
            samples[GENERATOR], aux = self._generator_grad_samples(inp, step, phase.name)
            ctx = self._step_context(inp, aux["prediction"], aux["spatial"], step, phase.name)
        else:
            ctx = self._forward(inp, step, phase.name)
        ctx.epoch = epoch
        mse, terms = self._terms(ctx)
        totals = {p: sum(terms.get(p, {}).values(), torch.zeros((), device=mse.device)) for p in self.method.players}
        totals[GENERATOR] = totals[GENERATOR] + mse
        probe_loss = F.cross_entropy(self.probe(ctx.features.detach()), ctx.sensitive_labels)
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
        flat = {"mse": mse, "shadow_probe_ce": probe_loss, **{f"{p}/{k}": v for p, t in terms.items() for k, v in t.items()}}
        return {k: float(v.detach()) for k, v in flat.items()}

    # -- per-example gradients of private players (DP-SGD) ------------------------------------------------
    def _named(self, params) -> list[str]:
        names = {id(q): n for n, q in self._joint.named_parameters()}
        return [names[id(q)] for q in params]

    def _private_names(self, private: dict) -> dict[str, list[str]]:
        return {p: self._named([q for g in pg for q in g["params"]]) for p, pg in private.items()}

    def _generator_grad_samples(self, inp, step, phase):
        """Per-example gradients of the generator's loss (diffusion MSE + its terms) w.r.t. the LoRA and the
        generator's method modules: vmap over examples of the UNet forward, hooks and ``method.losses`` on a
        batch of one. Returns them with the forward's prediction and features (detached) for the rest."""
        params = [q for g in self.groups if g.player == GENERATOR for q in g.params]
        names = self._named(params)

        def loss_one(prm, one):
            return functional_call(self._joint, prm, (_one(one), step, phase))
        grads, aux = per_example_grads(loss_one, {n: q.detach() for n, q in zip(names, params)}, inp)
        return [grads[n] for n in names], aux

    def _generator_loss_one(self, one, step, phase):
        ctx = self._forward(one, step, phase)
        terms = self.method.losses(ctx) or {}
        loss = F.mse_loss(ctx.prediction, ctx.noise) + sum(terms.get(GENERATOR, {}).values())
        return loss, {"prediction": ctx.prediction.detach()[0], "spatial": [h.detach()[0] for h in ctx.spatial]}

    def _player_grad_samples(self, player, ctx):
        """Per-example gradients of a private non-generator player's terms w.r.t. its own parameters, on the
        step's (detached) features: the player's gradient never reaches the UNet."""
        params = [q for g in self.groups if g.player == player for q in g.params]
        names = [n.removeprefix("method.") for n in self._named(params)]
        batch = {k: getattr(ctx, k) for k in ("latents", "noisy_latents", "timesteps", "noise", "labels")}
        batch |= {"prediction": ctx.prediction.detach(), "spatial": [h.detach() for h in ctx.spatial]}

        def loss_one(prm, one):
            one = _one(one)
            c = self._step_context(one, one["prediction"], one["spatial"], ctx.step, ctx.phase)
            c.epoch = ctx.epoch
            loss = sum((functional_call(self.method, prm, (c,)) or {}).get(player, {}).values())
            return loss, loss.detach()
        grads, _ = per_example_grads(loss_one, {n: q.detach() for n, q in zip(names, params)}, batch)
        return [grads[n] for n in names]

    def _snapshot(self):
        return {"lora": [p.detach().clone() for p in self.lora_params],
                "method": copy.deepcopy(self.method.state_dict()), "probe": copy.deepcopy(self.probe.state_dict())}

    def _restore(self, s):
        with torch.no_grad():
            for p, v in zip(self.lora_params, s["lora"]):
                p.copy_(v)
        self.method.load_state_dict(s["method"])
        self.probe.load_state_dict(s["probe"])

    @torch.no_grad()
    def features(self, lat: LatentSet, timestep: int, null_text: torch.Tensor | None = None,
                 batch: int = 256) -> torch.Tensor:
        """Pooled LoRA features at a fixed timestep and seeded noise, from the posterior mean.

        ``null_text``: text states of the empty prompt (the default for PT / probe); None: the split's
        own training prompts."""
        self.base.unet.eval()
        g = torch.Generator().manual_seed(4321)
        out = [self._context(lat, torch.arange(i, min(i + batch, len(lat))), g, training=False, timestep=timestep,
                             text=null_text).features.cpu() for i in range(0, len(lat), batch)]
        return torch.cat(out)
