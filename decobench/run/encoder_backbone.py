"""The model track's trainable part: a face encoder with utility heads, released together.

MTL-Adv-DP, DPLH and adversarial reconstruction release a multi-task face model; here that is
:class:`~decobench.models.encoder.FaceEncoder` (GroupNorm, exact per-example gradients) with one linear
head per utility attribute on its pooled last-stage features. The base loss (what the released model
always minimises, like the diffusion MSE on the data track) is the mean cross-entropy of the utility heads;
methods add their players and terms on ``StepContext.features`` (the released feature vector),
``spatial`` (the last stage's map) and ``images``. Training images are flipped horizontally at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from decobench.models.encoder import FaceEncoder, to_input


@dataclass
class ImageSet:
    """The images of one split (uint8 [N, H, W, 3]) and every label."""

    images: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> "ImageSet":
        return ImageSet(self.images[idx], {k: v[idx] for k, v in self.labels.items()})

    @staticmethod
    def concat(sets: list["ImageSet"]) -> "ImageSet":
        keys = set.intersection(*(set(s.labels) for s in sets))
        return ImageSet(torch.cat([s.images for s in sets]), {k: torch.cat([s.labels[k] for s in sets]) for k in keys})


class EncoderBackbone:
    name = "encoder"
    base_loss_name = "utility_ce"

    def __init__(self, spec, method, device="cpu", seed: int = 0, widths: tuple[int, ...] = (32, 64, 128, 256)):
        torch.manual_seed(seed)  # the encoder's initialisation depends on the seed alone, not on the method
        encoder = FaceEncoder(widths)
        self.utility = tuple(spec.utility)
        heads = nn.ModuleDict({u: nn.Linear(encoder.feature_dim, spec.n_classes[u]) for u in self.utility})
        self.module = nn.ModuleDict({"encoder": encoder, "heads": heads}).to(device)
        self.device, self.dims = device, [encoder.feature_dim]
        self.params = list(self.module.parameters())
        self.counts = {"encoder_params": sum(p.numel() for p in encoder.parameters()),
                       "head_params": sum(p.numel() for p in heads.parameters())}

    def train(self, mode: bool = True) -> None:
        self.module.train(mode)

    def inputs(self, data: ImageSet, idx, g, training=True) -> dict:
        x = to_input(data.images[idx]).to(self.device)
        if training:  # random horizontal flips, drawn from the trainer's generator
            flip = (torch.rand(len(idx), generator=g) < 0.5).to(self.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return {"images": x, "labels": {k: v[idx].to(self.device) for k, v in data.labels.items()}}

    def forward(self, inp: dict) -> dict:
        maps, _ = self.module["encoder"](inp["images"])
        return {"images": inp["images"], "spatial": [maps[-1]]}

    def head_logits(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {u: self.module["heads"][u](features) for u in self.utility}

    def base_loss(self, ctx) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The mean over utility heads of their cross-entropy, and each head's. Rows labelled -1 (DPLH's
        non-face patches have no age or gender) count for nothing; the mean is over the labelled rows."""
        logits = self.head_logits(ctx.features)
        parts = {}
        for u in self.utility:
            y = ctx.labels[u]
            w = (y >= 0).to(logits[u].dtype)
            ce = F.cross_entropy(logits[u], y.clamp(min=0), reduction="none")
            parts[f"{u}_ce"] = (ce * w).sum() / w.sum().clamp(min=1.0)
        return sum(parts.values()) / len(parts), parts

    @torch.no_grad()
    def features(self, trainer, data: ImageSet, batch: int = 256) -> torch.Tensor:
        """The released feature vectors of a split (eval mode, no flips)."""
        self.train(False)
        return torch.cat([self.module["encoder"](to_input(data.images[i:i + batch]).to(self.device))[1].cpu()
                          for i in range(0, len(data), batch)])

    def remove(self) -> None:
        pass
