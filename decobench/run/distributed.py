"""One run on several processes (data parallel), started by ``accelerate launch`` or ``torchrun``.

accelerate reads the launcher's environment, starts the process group (gloo on CPU, NCCL on GPUs),
places each process on its device and does the collectives. The trainer cannot hand its players to
DistributedDataParallel: every player steps on ``torch.autograd.grad`` of one shared forward pass,
which DDP's reducer never sees. So each process takes its rows of the step's batch (the batch, its noise
and its timesteps are drawn once, identically, on every process) and each parameter's gradient is summed
across processes, weighted by each process's share of the rows, the moment autograd computes it (a tensor
hook, :mod:`decobench.run.parallel_train`): the gradient of the whole batch's mean loss, as one process
computes it, before clipping and the optimiser step. Two processes train the LoRA one process trains, up to
floating-point summation order (tested). Methods whose loss couples the examples of a batch (triplet
mining, batch statistics) see each process's rows only.
"""

from __future__ import annotations

import os

import torch


class Processes:
    """This run's processes; a single process unless launched with ``WORLD_SIZE`` > 1."""

    def __init__(self, device: str = "cpu"):
        self.state = None
        self.rank, self.world, self.device = 0, 1, device
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState

            self.state = PartialState(cpu=str(device).startswith("cpu"))
            self.rank, self.world = self.state.process_index, self.state.num_processes
            self.device = str(self.state.device) if not str(device).startswith("cpu") else "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This process's contiguous share of ``n`` rows (sizes differ by at most one)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def take(self, batch, n: int):
        """This process's rows of every tensor (nested in dicts) whose first dimension is ``n``."""
        if self.world == 1:
            return batch
        if isinstance(batch, dict):
            return {k: self.take(v, n) for k, v in batch.items()}
        if isinstance(batch, torch.Tensor) and batch.dim() and len(batch) == n:
            return batch[self.rows(n)]
        return batch

    def sum(self, tensors):
        """Sum over processes (a tensor or a nested list/dict of them); unchanged on one process."""
        if self.world == 1:
            return tensors
        from accelerate.utils import reduce

        return reduce(tensors, reduction="sum")

    def broadcast_(self, params) -> None:
        """Every process starts from the main process's parameter values (as DDP does)."""
        if self.world == 1:
            return
        from accelerate.utils import broadcast

        with torch.no_grad():
            for p in params:
                p.copy_(broadcast(p.detach().clone(), from_process=0))

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one of them."""
        if self.world == 1:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=self.device)).item() > 0)

    def gather(self, items: list) -> list:
        """Every process's list, concatenated in rank order (picklable items)."""
        if self.world == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def refuse_dp(self, method: str) -> None:
        if self.world > 1:
            from decobench.run.config import ConfigError

            raise ConfigError(f"{method} trains with DP-SGD, which runs in one process here (Poisson sampling and one "
                             f"noise draw per step over every example); run it without accelerate launch / torchrun")


SINGLE = Processes()
