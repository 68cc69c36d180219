"""What a cloak maximises in the surrogate's feature space (FI-UAP, FI-UAP+, OPOM's hulls).

Every objective takes the cloaked features ``a`` [B, m, d] (unit norm, with gradient), the identity's clean
features ``C`` [B, n, d] (constant) and ``own`` [B, m] (the index in C of each cloaked image's own clean
feature, for FI-UAP) and returns one value per cloaked image [B, m]; the crafting loop sums them, so one
identity's mask gets the gradient of its own images only.

* ``fi_uap``: ||a_i - c_i||^2, the distance to the image's own clean feature (FI-UAP);
* ``fi_uap_plus``: 1 - <a_i, mu>, mean cosine distance to all clean features (FI-UAP+, over all n x n pairs);
* ``centre`` / ``affine`` / ``convex``: ||p_i - a_i||^2, p_i the projection of a_i onto the class centre, the
  affine hull or the convex hull of C (OPOM-ClassCenter, -AffineHull, -ConvexHull; :mod:`hull`).
"""

from __future__ import annotations

import torch

from decobench.cloaks.hull import COEFFICIENTS

OBJECTIVES = ("fi_uap", "fi_uap_plus", "centre", "affine", "convex")


def objective(kind: str, a: torch.Tensor, C: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    if kind == "fi_uap":
        mine = torch.gather(C, 1, own[..., None].expand(-1, -1, C.shape[-1]))
        return (a - mine).pow(2).sum(-1)
    if kind == "fi_uap_plus":
        return 1 - (a * C.mean(1, keepdim=True)).sum(-1)
    if kind in COEFFICIENTS:
        alpha = COEFFICIENTS[kind](C, a)                  # held fixed: the exact gradient of the distance
        return (alpha @ C - a).pow(2).sum(-1)
    raise ValueError(f"unknown cloak objective {kind!r}; choose one of {', '.join(OBJECTIVES)}")
