"""``synthface-features-v1``: the fixed image feature extractor every run's quality metric shares.

Inception-v3 weights cannot be downloaded here, and a network retrained per run on the very images
it compares against makes distances incomparable across runs. So decobench ships one small CNN,
trained once on the disjoint ``synthfaces-pretrain`` population (no identity of any split) to predict
race, gender, age and expression, frozen, with a manifest of how it was made. Its 256-d penultimate
features feed KID and the Fréchet distance (torch-fidelity's formulas) for every run and every base.

Reproduce the committed weights: ``python -m decobench.models.face_features``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NAME = "synthface-features-v1"
DIR = Path(__file__).parent / "face_features"
IMAGE_SIZE = 32
HEADS = {"race": 5, "gender": 2, "age": 9, "expression": 2}


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class FaceFeatureNet(nn.Module):
    """32x32 RGB in [-1, 1] -> 256-d features (global-average-pooled), plus attribute heads."""

    dim = 256

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(_block(3, 32), _block(32, 64), _block(64, 128), _block(128, 256))
        self.heads = nn.ModuleDict({k: nn.Linear(self.dim, n) for k, n in HEADS.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: h(f) for k, h in self.heads.items()}


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,32,32] in [-1, 1] (area-downsampled)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if x.shape[-1] != IMAGE_SIZE:
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area" if x.shape[-1] > IMAGE_SIZE else "bilinear")
    return x


def load(folder: Path = DIR) -> FaceFeatureNet:
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    if not path.is_file():
        from decobench.models.base import BaseModelError
        raise BaseModelError(f"{NAME} weights missing at {path}; rebuild them with "
                                f"python -m decobench.models.face_features")
    net = FaceFeatureNet()
    net.load_state_dict(load_file(str(path)))
    return net.eval().requires_grad_(False)


@torch.no_grad()
def embed(net: FaceFeatureNet, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """256-d features of uint8 images, float64 on the CPU (what torch-fidelity's formulas take)."""
    dev = next(net.parameters()).device
    out = [net.features(to_input(images[i:i + batch]).to(dev)).double().cpu() for i in range(0, len(images), batch)]
    return torch.cat(out) if out else torch.empty(0, net.dim, dtype=torch.float64)


def fit_net(net: nn.Module, x: torch.Tensor, loss_fn, epochs: int, batch: int, seed: int, t0: float) -> list[float]:
    """AdamW 2e-3 with a one-cycle schedule and random horizontal flips; ``loss_fn(outputs, batch_index, flip)``
    (``flip``: which examples of the batch were mirrored, for targets that change with it). Returns the
    per-step losses."""
    n = len(x)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    net.train()
    losses = []
    for epoch in range(epochs):
        print(f"epoch {epoch + 1}/{epochs}, {time.time() - t0:.0f} s", flush=True)
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - batch + 1, batch):
            b = perm[i:i + batch]
            flip = torch.rand(len(b), 1, 1, 1, generator=g) < 0.5
            loss = loss_fn(net(torch.where(flip, x[b].flip(-1), x[b])), b, flip.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return losses


def pretrain_images(n_images: int, seed: int):
    """``n_images`` random faces of the disjoint synthfaces-pretrain population: (inputs [N, 3, 32, 32], labels)."""
    from decobench.data.synthfaces import DOMAINS, build_population, render_faces

    torch.manual_seed(seed)
    pop = build_population(DOMAINS["synthfaces-pretrain"])
    idx = np.random.default_rng(seed).permutation(len(pop))[:min(n_images, len(pop))]
    return to_input(render_faces(pop, idx, IMAGE_SIZE, supersample=2)[0]), pop.labels.iloc[idx]


def save_net(out: Path, net: nn.Module, manifest: dict, losses: list[float], t0: float) -> dict:
    """Write ``model.safetensors`` and ``manifest.json`` (atomically), the manifest completed with the final
    loss, the wall time and the weights' sha256."""
    from safetensors.torch import save_file

    from decobench.io import atomic_write_json, sha256_file

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".model.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(out / "model.safetensors")
    manifest = {**manifest, "population": "synthfaces-pretrain (no identity of any split)",
                "optimiser": "AdamW 2e-3 one-cycle, wd 1e-4, flip augmentation",
                "final_loss": float(np.mean(losses[-50:])), "wall_s": round(time.time() - t0, 1),
                "sha256": sha256_file(out / "model.safetensors")}
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def train(out: Path = DIR, n_images: int = 20000, epochs: int = 5, seed: int = 0, batch: int = 128) -> dict:
    """Train on synthfaces-pretrain and write ``model.safetensors`` + ``manifest.json`` (atomically)."""
    t0 = time.time()
    x, labels = pretrain_images(n_images, seed)
    ys = {k: torch.tensor(labels[k].to_numpy(), dtype=torch.long) for k in HEADS}
    net = FaceFeatureNet()
    losses = fit_net(net, x, lambda out_, b, _: sum(F.cross_entropy(out_[k], ys[k][b]) for k in HEADS), epochs, batch,
                     seed, t0)
    return save_net(out, net, {"name": NAME, "command": "python -m decobench.models.face_features", "images": len(x),
                               "epochs": epochs, "batch": batch, "seed": seed, "heads": HEADS}, losses, t0)


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(json.dumps(train(), indent=2))
