"""The game trainer on several processes: each takes its rows of every batch, gradients summed across them.

A subclass, not a change to :class:`~decobench.run.train.Trainer`: what a run computes is the same on one
process or several (up to floating-point summation order), so the trainer's code, which versions every
committed result, stays as it is. See :mod:`decobench.run.distributed`.
"""

from __future__ import annotations

import torch

from decobench.run.distributed import Processes
from decobench.run.train import Trainer


class ParallelTrainer(Trainer):
    def __init__(self, *args, procs: Processes, **kw):
        super().__init__(*args, **kw)
        self.procs, self._weight, self._hooks = procs, 1.0, []
        self._params = list(dict.fromkeys([p for g in self.groups for p in g.params] + list(self.probe.parameters())))
        procs.broadcast_(self._params)  # every process starts where the main one does, as under DDP

    def _share(self, grad: torch.Tensor) -> torch.Tensor:
        return self.procs.sum(grad * self._weight)

    def _inputs(self, data, idx, g, training=True, **kw) -> dict:
        """The whole batch drawn as one process draws it (same rows, noise, timesteps), then this process's rows."""
        inp = super()._inputs(data, idx, g, training, **kw)
        if not training:  # evaluation and features: every process reads all of V (identical selection)
            return inp
        rows = self.procs.rows(len(idx))
        self._weight = (rows.stop - rows.start) / len(idx)
        return self.procs.take(inp, len(idx))

    def fit(self, train, val) -> dict:
        if any(g.dp for g in self.groups):
            self.procs.refuse_dp(type(self.method).__name__)
        self._hooks = [p.register_hook(self._share) for p in self._params]
        try:
            return super().fit(train, val)
        finally:  # later gradients (attacks, on the main process alone) are not shared
            for h in self._hooks:
                h.remove()

    def _train_step(self, *args, **kw) -> dict[str, float]:
        """The step's logged losses as the whole batch's means (each process's rows weighted by their share)."""
        flat = super()._train_step(*args, **kw)
        values = torch.tensor(list(flat.values()), dtype=torch.float64, device=self.device) * self._weight
        return dict(zip(flat, self.procs.sum(values).tolist()))
