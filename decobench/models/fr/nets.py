"""Backbones of the face-recognition zoo: three families built from torchvision's own blocks.

``resnet``: a compact ResNet of torchvision ``BasicBlock``s (widths 32-256, one block per stage);
``mobilenet``: torchvision ``MobileNetV2`` at width 0.5 (inverted residuals, depthwise convs), total stride 16;
``senet``: torchvision ``RegNet`` Y-type blocks with squeeze-and-excitation (se_ratio 0.25).
Each maps an RGB face in [-1, 1] at the model's input size to an embedding (L2-normalised by
:class:`FRNet` at inference; the metric-learning losses normalise it themselves in training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MobileNetV2
from torchvision.models.regnet import BlockParams, RegNet
from torchvision.models.resnet import BasicBlock


class CompactResNet(nn.Module):
    def __init__(self, dim: int, widths=(32, 64, 128, 256)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, c_in = [], widths[0]
        for i, c in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None if stride == 1 and c == c_in else nn.Sequential(
                nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c))
            layers.append(BasicBlock(c_in, c, stride, down))
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, dim)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


# MobileNetV2's (expansion, channels, blocks, stride) with the 6th stage at stride 1 (total stride 16, like
# the compact ResNet): the stock stride 32 leaves a 1x1 map of a 32 px face (measured: rank-1 2 %, the floor)
MOBILENET_32PX = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 1],
                  [6, 320, 1, 1]]


def build_backbone(family: str, dim: int) -> nn.Module:
    if family == "resnet":
        return CompactResNet(dim)
    if family == "mobilenet":  # torchvision's blocks; one fewer stride-2 stage keeps a 2x2 map at 32 px
        return MobileNetV2(num_classes=dim, width_mult=0.5, inverted_residual_setting=MOBILENET_32PX)
    if family == "senet":
        return RegNet(BlockParams.from_init_params(depth=10, w_0=24, w_a=24, w_m=2.5, group_width=8, se_ratio=0.25),
                      num_classes=dim)
    raise ValueError(f"unknown backbone family {family!r}; choose resnet, mobilenet or senet")


FAMILIES = ("resnet", "mobilenet", "senet")


class FRNet(nn.Module):
    """Backbone -> embedding; ``embed`` takes uint8-range images and returns unit-norm embeddings."""

    def __init__(self, family: str, dim: int = 128, input_size: int = 32, crop: float = 0.75):
        super().__init__()
        self.family, self.dim, self.input_size, self.crop = family, dim, input_size, crop
        self.backbone = build_backbone(family, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """float [N,3,H,W] in [0, 1] -> the network's input: the central ``crop`` of the image (the face, as
        an aligner would cut it; faces are centred), resized to input_size, in [-1, 1].
        Differentiable, so cloaks and inversion attacks can take gradients through it."""
        h, w = images.shape[-2:]
        ch, cw = round(h * self.crop), round(w * self.crop)
        images = images[..., (h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False, antialias=images.shape[-1] > self.input_size)
        return images * 2 - 1

    def embed_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """float [N,3,H,W] in [0, 1] -> unit-norm embeddings (differentiable)."""
        return F.normalize(self(self.prepare(images)), dim=1)
