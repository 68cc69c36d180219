"""Projections of cloaked features onto an identity's clean feature set (OPOM's hulls), batched.

``C``: [B, n, d] clean unit-norm features of each identity's n crafting images; ``a``: [B, m, d] cloaked
features. Each function returns the coefficients ``alpha`` [B, m, n] of the projection ``p = alpha @ C``;
the objectives hold them fixed while differentiating the distance ``||p - a||^2``, which (Danskin) is the
exact gradient of the squared distance to the hull.

* class centre: ``alpha = 1/n`` (the mean of the clean features);
* affine hull (``sum alpha = 1``): closed form through the SVD of the centred features, float64;
* convex hull (``sum alpha = 1, alpha >= 0``): one 10-variable QP per cloaked feature, solved in one batch by
  proxsuite's dense ProxQP (``solve_in_parallel``), the solver of the Inria/Simple-Robotics team.
"""

from __future__ import annotations

import numpy as np
import torch


def centre_coefficients(C: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    B, n, _ = C.shape
    return torch.full((B, a.shape[1], n), 1.0 / n, dtype=C.dtype, device=C.device)


def affine_coefficients(C: torch.Tensor, a: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """alpha = 1/n + V diag(1/s) U^T (a - mu) over the directions of C - mu with s > rtol * s_max."""
    C64, a64 = C.detach().double(), a.detach().double()
    mu = C64.mean(1, keepdim=True)                                   # [B, 1, d]
    U, S, Vh = torch.linalg.svd((C64 - mu).transpose(1, 2), full_matrices=False)  # [B,d,n], [B,n], [B,n,n]
    inv = torch.where(S > rtol * S[:, :1], 1.0 / S.clamp_min(1e-300), torch.zeros_like(S))
    coords = (a64 - mu) @ U                                          # [B, m, n]: a - mu in the hull's basis
    alpha = 1.0 / C.shape[1] + (coords * inv[:, None, :]) @ Vh       # [B, m, n]
    return alpha.to(C.dtype)


def convex_coefficients(C: torch.Tensor, a: torch.Tensor, eps_abs: float = 1e-9, threads: int | None = None) -> torch.Tensor:
    """argmin_alpha ||alpha @ C - a||^2 over the simplex, one QP per (identity, cloaked feature)."""
    import proxsuite

    dense = proxsuite.proxqp.dense
    C64, a64 = C.detach().double().cpu().numpy(), a.detach().double().cpu().numpy()
    B, m, n = C64.shape[0], a64.shape[1], C64.shape[1]
    G = 2 * np.einsum("bid,bjd->bij", C64, C64)                      # Hessian per identity
    g = -2 * np.einsum("bid,bmd->bmi", C64, a64)                     # linear term per cloaked feature
    eye = np.eye(n)
    ones, one = np.ones((1, n)), np.ones(1)
    lo, hi = np.zeros(n), np.ones(n)
    qps = dense.BatchQP(B * m)
    for b in range(B):
        for k in range(m):
            qp = qps.init_qp_in_place(n, 1, n)
            qp.settings.eps_abs = eps_abs
            qp.init(G[b], g[b, k], ones, one, eye, lo, hi)
    dense.solve_in_parallel(qps, threads or torch.get_num_threads())
    alpha = np.stack([qps.get(i).results.x for i in range(B * m)]).reshape(B, m, n)
    alpha = np.clip(alpha, 0.0, None)
    alpha /= alpha.sum(-1, keepdims=True)                            # remove the solver's 1e-9 slack
    return torch.from_numpy(alpha).to(C.dtype).to(C.device)


COEFFICIENTS = {"centre": centre_coefficients, "affine": affine_coefficients, "convex": convex_coefficients}
