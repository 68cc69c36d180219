"""``synthface-perceptual-v1``: the in-house network behind the perceptual terms of the seeds' methods.

Adversarial reconstruction (Xiao et al.) and MTL-Adv-DP train with a perceptual loss (Johnson et al.:
distances between a frozen network's feature maps), for which the papers use an ImageNet VGG. No ImageNet
weights can be downloaded here, so decobench ships a small VGG-style network (two 3x3 convolutions with
GroupNorm and ReLU per block, three blocks at 32, 16 and 8 px) trained once on the disjoint
``synthfaces-pretrain`` population (no identity of any split) to predict race, gender, age, expression and
head pose. It is *not* ``synthface-features-v1`` (the quality metric's network): a method never trains
against the network that scores it.

The loss: the mean over blocks of the mean squared difference of their outputs (each block's map divided by
its RMS over the reference batch, so every block weighs alike). Replace the network with a local file by
``--set method.perceptual=torchscript:/path/net.pt``: a TorchScript module mapping images [B, 3, 32, 32] in
[-1, 1] to a list of feature maps (e.g. a scripted VGG16 truncated at relu3_3, with its own normalisation).

Reproduce the committed weights: ``python -m decobench.models.perceptual``.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from decobench.models.face_features import fit_net, pretrain_images, save_net

NAME = "synthface-perceptual-v1"
DIR = Path(__file__).parent / "perceptual"
IMAGE_SIZE = 32
HEADS = {"race": 5, "gender": 2, "age": 9, "expression": 2}
POSE = ("yaw_deg", "pitch_deg", "roll_deg")


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.ReLU())


class PerceptualNet(nn.Module):
    """VGG-style: blocks of 32, 64, 128 channels with 2x max-pooling between; attribute and pose heads on the
    pooled last block (used only to train it)."""

    def __init__(self, widths=(32, 64, 128)):
        super().__init__()
        chans = (3, *widths)
        self.blocks = nn.ModuleList(_block(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.heads = nn.ModuleDict({k: nn.Linear(widths[-1], n) for k, n in HEADS.items()})
        self.pose = nn.Linear(widths[-1], len(POSE))

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, block in enumerate(self.blocks):
            x = block(F.max_pool2d(x, 2) if i else x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.maps(x)[-1].mean(dim=(2, 3))
        return {**{k: h(f) for k, h in self.heads.items()}, "pose": self.pose(f)}


class PerceptualLoss(nn.Module):
    """Frozen feature maps -> the mean over layers of MSE(phi(x), phi(y)), each layer scaled by the RMS of
    phi(y). Inputs [B, 3, H, W] in [-1, 1] (resized to 32 px); differentiable in ``x``."""

    def __init__(self, maps):
        super().__init__()
        self.net = maps
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True):  # always frozen, in eval mode
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != IMAGE_SIZE:
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        fx, fy = self.net(x), self.net(y)
        terms = [((a - b) ** 2).mean() / (b.detach() ** 2).mean().clamp(min=1e-8) for a, b in zip(fx, fy)]
        return torch.stack(terms).mean()


class _Maps(nn.Module):
    def __init__(self, net: PerceptualNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.maps(x)


def perceptual_loss(spec: str = NAME) -> PerceptualLoss:
    """The perceptual loss by name: ``synthface-perceptual-v1`` (shipped) or ``torchscript:<path>``."""
    return PerceptualLoss(_load_maps(spec))


@lru_cache(maxsize=4)
def _load_maps(spec: str) -> nn.Module:
    from decobench.models.base import BaseModelError

    if spec.startswith("torchscript:"):
        path = Path(spec.removeprefix("torchscript:")).expanduser()
        if not path.is_file():
            raise BaseModelError(f"perceptual network {path} not found: give a TorchScript file mapping images "
                                 f"[B, 3, 32, 32] in [-1, 1] to a list of feature maps")
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: say so
            raise BaseModelError(f"perceptual network {path} is not a loadable TorchScript module ({e})") from e
    if spec != NAME:
        raise BaseModelError(f"unknown perceptual network {spec!r}: use {NAME} or torchscript:<path>")
    from safetensors.torch import load_file

    path = DIR / "model.safetensors"
    if not path.is_file():
        raise BaseModelError(f"{NAME} weights missing at {path}; rebuild them with python -m decobench.models.perceptual")
    net = PerceptualNet()
    net.load_state_dict(load_file(str(path)))
    return _Maps(net).eval()


def train(out: Path = DIR, n_images: int = 20000, epochs: int = 5, seed: int = 1, batch: int = 128) -> dict:
    """Train on synthfaces-pretrain and write ``model.safetensors`` + ``manifest.json`` (atomically)."""
    t0 = time.time()
    x, labels = pretrain_images(n_images, seed)
    ys = {k: torch.tensor(labels[k].to_numpy(), dtype=torch.long) for k in HEADS}
    pose = torch.tensor(labels[list(POSE)].to_numpy(np.float32) / 30.0)  # degrees / 30: unit scale

    def loss(out_, b, flip):
        p = torch.where(flip[:, None], pose[b] * torch.tensor([-1.0, 1.0, -1.0]), pose[b])  # mirrored yaw, roll
        return sum(F.cross_entropy(out_[k], ys[k][b]) for k in HEADS) + F.mse_loss(out_["pose"], p)
    net = PerceptualNet()
    losses = fit_net(net, x, loss, epochs, batch, seed, t0)
    return save_net(out, net, {"name": NAME, "command": "python -m decobench.models.perceptual", "images": len(x),
                               "epochs": epochs, "batch": batch, "seed": seed,
                               "heads": {**HEADS, "pose": "yaw, pitch, roll (MSE, degrees / 30)"},
                               "layers": "outputs of the three blocks (32, 64, 128 channels at 32, 16, 8 px)"},
                    losses, t0)


if __name__ == "__main__":
    print(json.dumps(train(), indent=2))
