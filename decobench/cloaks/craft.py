"""Craft one universal cloak per identity on its crafting images, batched across identities.

The paper-faithful loop (GA-OPOM paper Alg. 1 / OPOM's FIM; choices in README "Privacy cloaks"):

* one shared mask per identity, L-inf ``eps`` grey levels, random start U(-eps, eps) seeded by (seed,
  identity index), so a mask never depends on which identities share its batch;
* every outer step: the objective of each cloaked crafting image (gradient with respect to the clipped
  cloaked image), summed over the identity's images, one sign step of ``step`` grey levels, clip to eps;
* OPOM-ConvexHull's first ``centre_steps`` outer steps aim at the class centre (OPOM's scripts: 5);
* GA: inside each outer step, M = K x n single-image steps on randomly drawn crafting images update a
  temporary copy of the mask by sign steps and sum their *raw* gradients; the outer step then takes one sign
  step from the mask before the inner loop, with that sum (the temporary copy is discarded);
* momentum (MI-FGSM, ``momentum`` = mu): G <- mu G + g / mean|g|, step on sign(G);
* DFANet: dropout ``dropout`` on every convolution's output of the surrogate (model kept in eval mode), the
  clean features recomputed through the dropped model each step.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from decobench.cloaks.objectives import objective


@dataclass(frozen=True)
class CraftSettings:
    objective: str            # fi_uap | fi_uap_plus | centre | affine | convex
    ga: bool = False
    eps: float = 8.0          # grey levels (of 255)
    step: float = 1.0         # grey levels per sign step
    iterations: int = 16
    random_start: bool = True
    k: int = 4                # GA: M = k x n inner steps
    centre_steps: int = 5     # convex: the first outer steps use the class centre
    momentum: float | None = None
    dropout: float = 0.0      # DFANet on the surrogate's convolutions
    batch_identities: int = 100

    def gradients_per_identity(self, n: int) -> int:
        return self.iterations * (self.k * n if self.ga else n)


@contextmanager
def conv_dropout(net: nn.Module, p: float):
    """DFANet: dropout after every Conv2d of ``net`` while the block runs (batch norm stays in eval mode)."""
    if p <= 0:
        yield
        return
    hooks = [m.register_forward_hook(lambda _m, _i, out: F.dropout(out, p, training=True))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def _embed(net, x: torch.Tensor) -> torch.Tensor:
    """float [..., 3, H, W] in [0, 1] -> unit-norm features [..., d]."""
    lead = x.shape[:-3]
    return net.embed_tensor(x.reshape(-1, *x.shape[-3:])).reshape(*lead, -1)


def _craft_batch(images: torch.Tensor, net, s: CraftSettings, gens: list[torch.Generator]) -> torch.Tensor:
    B, n = images.shape[:2]
    eps, step = s.eps / 255, s.step / 255
    if s.random_start:
        delta = torch.stack([(torch.rand(images.shape[2:], generator=g) * 2 - 1) * eps for g in gens])
    else:
        delta = torch.zeros(B, *images.shape[2:])
    if s.ga:
        picks = torch.stack([torch.randint(n, (s.iterations, s.k * n), generator=g) for g in gens])  # [B, T, M]
    momentum = torch.zeros_like(delta)
    rows = torch.arange(B)

    def grad_of(x, kind, own, C):
        x = x.clamp(0, 1).detach().requires_grad_(True)
        value = objective(kind, _embed(net, x).reshape(B, own.shape[1], -1), C, own).sum()
        return torch.autograd.grad(value, x)[0]

    for t in range(s.iterations):
        kind = "centre" if s.objective == "convex" and t < s.centre_steps else s.objective
        with conv_dropout(net, s.dropout):
            with torch.no_grad():
                C = _embed(net, images)                                    # [B, n, d]
            if not s.ga:
                own = torch.arange(n).expand(B, n)
                g = grad_of(images + delta[:, None], kind, own, C).sum(1)
            else:
                inner, g = delta.clone(), torch.zeros_like(delta)
                for m in range(s.k * n):
                    idx = picks[:, t, m]
                    gm = grad_of(images[rows, idx] + inner, kind, idx[:, None], C)
                    inner = (inner + step * gm.sign()).clamp(-eps, eps)
                    g += gm
        if s.momentum is not None:
            momentum = s.momentum * momentum + g / g.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-20)
            g = momentum
        delta = (delta + step * g.sign()).clamp(-eps, eps)
    return delta


def craft_masks(images: torch.Tensor, net, settings: CraftSettings, seed: int = 0, log=None) -> torch.Tensor:
    """images: float [I, n, 3, H, W] in [0, 1] (each identity's crafting images) -> masks [I, 3, H, W] in
    [-eps/255, eps/255]. ``net.embed_tensor`` maps [N, 3, H, W] in [0, 1] to unit-norm features."""
    net.eval().requires_grad_(False)
    torch.manual_seed(seed)  # DFANet's dropout draws from the global generator
    out = []
    for lo in range(0, len(images), settings.batch_identities):
        hi = min(lo + settings.batch_identities, len(images))
        gens = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(lo, hi)]
        out.append(_craft_batch(images[lo:hi], net, settings, gens))
        if log:
            log(f"cloak: {hi}/{len(images)} identities")
    return torch.cat(out)


def apply_mask(images, masks: torch.Tensor):
    """uint8 [I, m, H, W, 3] images + masks [I, 3, H, W] -> cloaked uint8, rounded (not truncated), so every
    pixel moves by at most eps grey levels."""
    import numpy as np

    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = x + 255 * masks.permute(0, 2, 3, 1)[:, None]
    return torch.round(x).clamp(0, 255).to(torch.uint8).numpy()
