"""The public interface every decoupling method implements, built-in or third-party.

A method sees *features* (a list of pooled LoRA feature tensors, one per adapted layer) and the
sensitive labels of the batch, and returns named loss terms for the two players:

* ``generator_losses``: terms the generator side (LoRA adapters + the method's own
  ``generator_modules``) *minimises*, added to the diffusion MSE. Gradients flow into the features.
* ``adversary_losses``: terms the adversary (``adversary_modules``) *minimises*. The trainer passes
  features that are already detached, so these terms never reach the LoRA.

The trainer steps the two optimisers separately: generator first (adversary gradients from that
backward pass are discarded), then the adversary. A method with no adversary returns ``{}`` and
``None`` from ``adversary_logits``, and the Privacy PT column reads "n/a" for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class MethodConfig:
    """Knobs shared by the methods; a method reads the ones it needs (unknown keys are an error)."""

    lr: float | None = None          # None: the method's paper learning rate
    adv_weight: float = 1.0          # lambda on the generator's privacy term
    margin: float = 0.3              # triplet margin (metric)
    mask_ratio: float = 0.6          # fraction of first-layer channels masked (ce_mask)
    temperature: float = 1 / 30      # sigmoid temperature of the FGN (ce_mask)
    triplets: str = "semihard"       # triplets (metric): "semihard"/"hard" mined (paper: semihard), or "all"
    extra: dict = field(default_factory=dict)


class DecouplingMethod(nn.Module):
    """Base class: override ``generator_losses`` and, for adversarial methods, the adversary parts."""

    #: DECO-Bench A.3 learning rate for the LoRA optimiser under the paper profile
    paper_lr: float = 1e-5

    def __init__(self, feature_dims: list[int], n_sensitive: int, config: MethodConfig | None = None):
        super().__init__()
        self.feature_dims = list(feature_dims)
        self.n_sensitive = n_sensitive
        self.config = config or MethodConfig()
        self.generator_modules = nn.ModuleDict()
        self.adversary_modules = nn.ModuleDict()

    # -- hooks the trainer calls -----------------------------------------------------------------
    def transform_first(self, h: torch.Tensor) -> torch.Tensor:
        """Replace the first adapted layer's output (default: unchanged)."""
        return h

    def uses_transform(self) -> bool:
        return type(self).transform_first is not DecouplingMethod.transform_first

    def generator_losses(self, features: list[torch.Tensor], sensitive: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def adversary_losses(self, features: list[torch.Tensor], sensitive: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def adversary_logits(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        """The trained adversary's predictions of the sensitive attribute (Privacy PT)."""
        return None

    def generator_parameters(self):
        return list(self.generator_modules.parameters())

    def adversary_parameters(self):
        return list(self.adversary_modules.parameters())


def concat(features: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(features, dim=1)


def method_check(obj) -> str | None:
    if not (isinstance(obj, type) and issubclass(obj, DecouplingMethod)):
        return "a method plugin must be a subclass of decobench.methods.base.DecouplingMethod"
    return None
