"""DECO-Bench's attribute-classifier protocol: ResNet18 from scratch, early stopping on a held-out split.

Paper profile (appendix A.3): SGD lr 0.1, momentum 0.9, weight decay 5e-4, exponential LR decay
gamma 0.9, up to 100 epochs, stop after 20 epochs without a validation-loss improvement > 0.01,
batch 128, 128x128 images. The CPU profiles keep the optimiser and the stopping rule and scale the
image size, the epoch budget and the patience down; every figure reported says which profile.
"""

from __future__ import annotations

import copy
import math
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm


class ClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(128, ge=8, le=1024)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(0.1, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    gamma: float = Field(0.9, gt=0, le=1)
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(20, ge=1)
    min_delta: float = Field(0.01, ge=0)
    select_from_epoch: int = Field(0, ge=0, description="epochs before this one are neither selected nor counted "
                                   "by early stopping (BatchNorm statistics of the first epochs are not settled)")
    max_train_images: int | None = Field(None, ge=1)  # None: the whole training split
    augment_flip: bool = True

    def as_dict(self) -> dict:
        return self.model_dump(mode="json")


PROFILES = {
    "paper": ClassifierConfig(),
    # CPU profiles: 32 px, and an epoch budget wide enough that early stopping on the validation loss
    # (patience, min_delta) ends training, not the budget
    "embedded": ClassifierConfig(image_size=32, batch_size=128, max_epochs=40, patience=2, min_delta=0.01,
                                 select_from_epoch=2),
    "quick": ClassifierConfig(image_size=32, batch_size=128, max_epochs=8, patience=2, min_delta=0.01,
                              select_from_epoch=1),
}


class NonFiniteLossError(RuntimeError):
    pass


def to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,size,size] in [-1, 1] (area-downsampled when smaller)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear",
                          align_corners=None if x.shape[-1] > size else False)
    return x.contiguous()


def resnet18(n_classes: int) -> torch.nn.Module:
    return torchvision.models.resnet18(weights=None, num_classes=n_classes)


def _evaluate(model, x, y, batch):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch * 2):
            out = model(x[i:i + batch * 2])
            loss += F.cross_entropy(out, y[i:i + batch * 2], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch * 2]).sum().item()
    return loss / len(x), correct / len(x)


def train_classifier(x_train, y_train, x_val, y_val, n_classes: int, cfg: ClassifierConfig,
                     seed: int = 0, desc: str = "classifier", device: str = "cpu"):
    """Train a ResNet18 from scratch; returns (best model by validation loss, history)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if cfg.max_train_images and len(x_train) > cfg.max_train_images:
        keep = torch.randperm(len(x_train), generator=g)[:cfg.max_train_images]
        x_train, y_train = x_train[keep], y_train[keep]
    # channels_last: the same arithmetic, ~1.3x faster convolutions on CPU (oneDNN) and on GPUs
    model = resnet18(n_classes).to(device, memory_format=torch.channels_last)
    x_train, x_val = (t.to(device).contiguous(memory_format=torch.channels_last) for t in (x_train, x_val))
    y_train, y_val = y_train.to(device), y_val.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
    best, best_state, since, history = math.inf, None, 0, []
    bar = tqdm(range(cfg.max_epochs), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            if len(idx) < 2:
                continue
            xb = x_train[idx]
            if cfg.augment_flip:
                flip = torch.rand(len(idx), generator=g) < 0.5
                xb = torch.where(flip[:, None, None, None].to(device), xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb), y_train[idx])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{desc}: loss became {loss.item()} at epoch {epoch}; "
                                         f"lower the learning rate (config lr={cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        val_loss, val_acc = _evaluate(model, x_val, y_val, cfg.batch_size)
        history.append({"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
        bar.set_postfix(val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        if epoch < cfg.select_from_epoch:
            continue
        if val_loss < best - cfg.min_delta:
            best, best_state, since = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, history


def accuracy(model, x, y, batch: int = 256) -> float:
    return _evaluate(model, x, y, batch)[1]


@torch.no_grad()
def predict(model, x, batch: int = 512) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch]).argmax(1).cpu() for i in range(0, len(x), batch)])
