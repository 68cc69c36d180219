"""DP-SGD for a method's private parameter groups: Poisson sampling, per-example gradients from
``torch.func``, Opacus's ``DPOptimizer`` (per-example clipping to S over all private groups jointly,
Gaussian noise z·S once per step) and Opacus's accountant. Nothing here is hand-written privacy maths:
the noise multiplier is solved and ε is computed by Opacus (PRV by default, RDP as a setting).

What the ε covers is recorded beside it: the parameters that trained under DP-SGD, on the training
split Tr sampled with rate q. Players that train without DP on the same data (named in the record) are
outside the guarantee; if one of them feeds a private player's loss, that player's ε is void, and the
record says so. Checkpoint selection reads V (not Tr), so it spends none of Tr's budget. The sampling and
the noise are seeded by the run's seed (same command, same result): ε then assumes that seed stays secret.
"""

from __future__ import annotations

import secrets
from importlib import metadata

import torch
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer
from torch.func import grad, vmap


def poisson_batch(n: int, q: float, g: torch.Generator) -> torch.Tensor:
    """Each of the n examples joins the batch independently with probability q (batches vary in size and
    may be empty): the subsampling the accountant's analysis assumes."""
    return (torch.rand(n, generator=g) < q).nonzero().squeeze(1)


def solve_noise_multiplier(params, sample_rate: float, steps: int) -> float:
    """z for the run: solved by the accountant for ``target_epsilon`` over ``steps``, or as given."""
    if params.target_epsilon is None:
        return float(params.noise_multiplier)
    return float(get_noise_multiplier(target_epsilon=params.target_epsilon, target_delta=params.delta,
                                      sample_rate=sample_rate, steps=steps, accountant=params.accountant))


def epsilon(accountant: str, history, delta: float) -> float | None:
    """ε of a recorded history [(z, q, steps), ...]; None (= ∞) when any step ran without noise."""
    history = [tuple(h) for h in history if h[2] > 0]
    if not history:
        return 0.0
    if any(z == 0 for z, _, _ in history):
        return None
    acc = create_accountant(accountant)
    acc.history = history
    return float(acc.get_epsilon(delta))


def per_example_grads(loss_one, params: dict, batch, in_dims=0):
    """``vmap(grad(loss_one))``: the gradient of each example's own loss (not divided by the batch size)
    with respect to ``params``. ``loss_one(params, example) -> (scalar loss, aux)``; returns (grads, aux)
    with a leading batch dimension."""
    return vmap(grad(loss_one, has_aux=True), in_dims=(None, in_dims), randomness="different")(params, batch)


class PrivateTraining:
    """The DP state of one training run: z, q, the accountant's history, one AdamW (with its warm-up) per
    private player, kept across phases as without DP, and one Opacus ``DPOptimizer`` per set of private
    players that step together: it clips their per-example gradients jointly and noises them once (a phase
    where only some private players step must not noise the others); each player's AdamW then steps."""

    def __init__(self, params, n_train: int, batch_size: int, dp_steps: int, players: dict[str, list],
                 lr: dict[str, list[float]], weight_decay: dict[str, list[float]], warmup: dict[str, int],
                 non_private: list[str], device="cpu", seed: int = 0):
        self.params, self.players, self.non_private = params, players, non_private
        self.n_train, self.sample_rate = n_train, min(1.0, batch_size / n_train)
        self.expected_batch_size = max(1, round(self.sample_rate * n_train))
        self.planned_steps = dp_steps
        self.noise_multiplier = solve_noise_multiplier(params, self.sample_rate, max(1, dp_steps))
        self.secure = params.secure_rng
        if self.secure:  # secret seeds: ε does not rest on a seed someone could learn; not reproducible
            self.noise = torch.Generator(device=device).manual_seed(secrets.randbits(63))
            self.sampler = torch.Generator().manual_seed(secrets.randbits(63))
        else:  # benchmark mode: seeded, same run, same noise (the trainer's generator draws the batches)
            self.noise = torch.Generator(device=device).manual_seed(10_000 + seed)
            self.sampler = None
        self.history: list[list] = []    # [z, q, steps], merged like Opacus's accountants
        self.steps = 0
        self._adam = {}
        for p, groups in players.items():
            opt_cls = torch.optim.SGD if params.optimizer == "sgd" else torch.optim.AdamW
            opt = opt_cls([{"params": ps, "lr": r, "weight_decay": wd}
                           for ps, r, wd in zip(groups, lr[p], weight_decay[p], strict=True)])
            w = warmup.get(p, 0)  # constant after a linear warm-up (diffusers' constant_with_warmup), as without DP
            self._adam[p] = (opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s, w=w: s / w if s < w else 1.0))
        self._clip_noise: dict[tuple[str, ...], DPOptimizer] = {}

    def _params(self, players) -> list[torch.nn.Parameter]:
        return [q for p in players for group in self.players[p] for q in group]

    def _dp(self, players: tuple[str, ...]) -> DPOptimizer:
        if players not in self._clip_noise:  # Opacus's clipping and noise over exactly these players' parameters
            self._clip_noise[players] = DPOptimizer(
                torch.optim.SGD(self._params(players), lr=0.0), noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.params.max_grad_norm, expected_batch_size=self.expected_batch_size,
                loss_reduction="mean", generator=self.noise, secure_mode=self.secure)
        return self._clip_noise[players]

    def step(self, players: tuple[str, ...], grad_samples: dict[str, list[torch.Tensor]] | None) -> None:
        """One DP-SGD step of ``players`` from per-example gradients ([B, *shape] per parameter); None: an
        empty batch, a noise-only step."""
        dp = self._dp(players)
        if grad_samples is None:
            grad_samples = {p: [q.new_zeros((0, *q.shape)) for q in self._params((p,))] for p in players}
        for p in players:
            for prm, gs in zip(self._params((p,)), grad_samples[p], strict=True):
                prm.grad_sample = gs.detach()
        if not dp.pre_step():  # clip, noise, scale by the expected batch size; never skipped without accumulation
            raise RuntimeError("Opacus skipped a DP step (gradient accumulation is not used here)")
        for p in players:
            opt, sched = self._adam[p]
            opt.step()
            sched.step()
        dp.zero_grad(set_to_none=True)
        self.steps += 1
        entry = [self.noise_multiplier, self.sample_rate]
        if self.history and self.history[-1][:2] == entry:
            self.history[-1][2] += 1
        else:
            self.history.append([*entry, 1])

    def record(self, names: dict[str, list[str]], selected_dp_steps: int | None = None) -> dict:
        """What result.json carries: everything needed to recompute ε with Opacus, and what it covers.

        ε is over every DP step taken: the released checkpoint was chosen by comparing it with later ones
        (and training stopped on them), so it depends on all of them."""
        p = self.params
        private = sorted(n for ns in names.values() for n in ns)
        randomness = ("Secure RNG: the Poisson sampling and the noise come from generators seeded by os.urandom "
                      "(torch's generator, not a CSPRNG stream), with Opacus's floating-point-safe noise"
                      if self.secure else "Benchmark mode: the Poisson sampling and the noise come from generators "
                      "seeded by the run's seed, so ε holds only while that seed is secret")
        covers = (f"each training image (a person with several images is protected only as a group) against "
                  f"what the parameters of player(s) {', '.join(sorted(names))} ({len(private)} tensors) reveal; "
                  f"trained by DP-SGD on the training split. Not covered: V, which selects the checkpoint without "
                  f"DP; the per-step training losses in the history. {randomness}")
        if self.non_private:
            covers += (f"; player(s) {', '.join(self.non_private)} trained on the same data without DP and are "
                       f"not covered (a private player whose loss they feed has no end-to-end guarantee)")
        return {"epsilon": epsilon(p.accountant, self.history, p.delta), "delta": p.delta, "accountant": p.accountant,
                "target_epsilon": p.target_epsilon, "noise_multiplier": self.noise_multiplier,
                "sample_rate": self.sample_rate, "steps": self.steps, "planned_steps": self.planned_steps,
                "max_grad_norm": p.max_grad_norm, "expected_batch_size": self.expected_batch_size,
                "n_train": self.n_train, "sampling": "poisson", "history": self.history,
                "selected_dp_steps": selected_dp_steps, "private_players": sorted(names),
                "private_parameters": private, "non_private_players": self.non_private, "covers": covers,
                "randomness": "os.urandom" if self.secure else "seeded", "secure_rng": self.secure,
                "optimizer": p.optimizer, "opacus": metadata.version("opacus")}
