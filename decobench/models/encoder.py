"""The model track's released encoder: a compact ResNet that DP-SGD can train.

MTL-Adv-DP (ResNet-50), DPLH (HyperFace/AlexNet) and adversarial reconstruction (ResNet-50) each release a
face encoder; on the embedded world they share this one at CPU scale: four stages of two 3x3 convs with a
residual connection (widths 32, 64, 128, 256 by default, strides 1, 2, 2, 2 after a stride-1 stem) on a
32 px face in [-1, 1]. Built for per-example gradients: GroupNorm instead of BatchNorm (no coupling between
examples, nothing to fix for Opacus's validator), out-of-place activations and residual sums (torchvision's
ResNet fails under Opacus's hooks on torch 2.14 for exactly those), no running statistics, so
``torch.func.vmap`` over examples computes each example's gradient exactly.

``forward`` returns (stage feature maps, pooled features): the last stage's adaptive-average-pooled output
is the released feature vector; all stages are what a method's ``StepContext.spatial`` sees.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c // 4) or 1, c)


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm(c_out)
        self.skip = None if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + (x if self.skip is None else self.skip(x)))


class FaceEncoder(nn.Module):
    """Images [N, 3, H, W] in [-1, 1] -> (per-stage feature maps, pooled last-stage features [N, widths[-1]])."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), _norm(widths[0]), nn.ReLU())
        self.stages = nn.ModuleList(Block(c_in, c, 1 if i == 0 else 2)
                                    for i, (c_in, c) in enumerate(zip((widths[0], *widths[:-1]), widths)))
        self.dims = list(widths)

    @property
    def feature_dim(self) -> int:
        return self.dims[-1]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        h, maps = self.stem(x), []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        return maps, h.mean((2, 3))


def to_input(images) -> torch.Tensor:
    """uint8 [N, H, W, 3] (numpy or torch) -> float [N, 3, H, W] in [-1, 1]."""
    x = torch.as_tensor(images)
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1)
