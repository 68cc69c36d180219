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


_MIRROR = [2, 3, 0, 1, 4, 5, 8, 9, 6, 7]  # (x, y) of eye, eye, nose, mouth corner, mouth corner: swap the pairs


def flip_labels(labels: dict[str, torch.Tensor], flip: torch.Tensor) -> dict[str, torch.Tensor]:
    """Labels of horizontally flipped images: landmarks ([N, 10] in [-1, 1], x then y per point) mirror in x
    with left and right swapped; yaw and roll change sign (``pose`` = yaw, pitch, roll; ``yaw_deg``...)."""
    out = dict(labels)
    if "landmarks" in labels:
        lm = labels["landmarks"][:, _MIRROR] * torch.tensor([-1.0, 1.0] * 5, device=flip.device)
        out["landmarks"] = torch.where(flip[:, None], lm, labels["landmarks"])
    if "pose" in labels:
        out["pose"] = torch.where(flip[:, None], labels["pose"] * torch.tensor([-1.0, 1.0, -1.0], device=flip.device),
                                  labels["pose"])
    for k in ("yaw_deg", "roll_deg"):
        if k in labels:
            out[k] = torch.where(flip, -labels[k], labels[k])
    return out


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
        labels = {k: v[idx].to(self.device) for k, v in data.labels.items()}
        if training:  # random horizontal flips, drawn from the trainer's generator (geometric labels follow)
            flip = (torch.rand(len(idx), generator=g) < 0.5).to(self.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            labels = flip_labels(labels, flip)
        return {"images": x, "labels": labels}

    def forward(self, inp: dict) -> dict:
        maps, _ = self.module["encoder"](inp["images"])
        return {"images": inp["images"], "spatial": [maps[-1]]}

    def head_logits(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {u: self.module["heads"][u](features) for u in self.utility}

    def base_loss(self, ctx) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The mean over utility heads of their cross-entropy, and each head's. Rows labelled -1 (DPLH's
        non-face patches have no age or gender) contribute 0 and still count in the batch mean (DPLH's
        per-example losses carry the face label as a factor: the batch loss is their mean, as DP-SGD needs)."""
        logits = self.head_logits(ctx.features)
        parts = {}
        for u in self.utility:
            y = ctx.labels[u]
            w = (y >= 0).to(logits[u].dtype)
            ce = F.cross_entropy(logits[u], y.clamp(min=0), reduction="none")
            parts[f"{u}_ce"] = (ce * w).mean()
        return sum(parts.values()) / len(parts), parts

    @torch.no_grad()
    def features(self, trainer, data: ImageSet, batch: int = 256) -> torch.Tensor:
        """The released feature vectors of a split (eval mode, no flips)."""
        self.train(False)
        return torch.cat([self.module["encoder"](to_input(data.images[i:i + batch]).to(self.device))[1].cpu()
                          for i in range(0, len(data), batch)])

    def remove(self) -> None:
        pass
