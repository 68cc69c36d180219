"""Train and calibrate the face-recognition zoo on ``synthfaces-fr`` (``decobench fr train``).

The population's 3,200 identities (60 photos each) are split by identity: 1,800 train the models on
all 60 of their photos (many views of few people generalise far better than many passes over few
views: measured in README), 200 select the epoch (validation rank-1), 500 are enrolled and 700 are
distractors (their first 15 photos: 10,500 images) for the identity calibration: each enrolled
person's first image is in the gallery with every distractor, four more of its images are probes
(2,000 probes, 1:N search over 11,000 gallery images). Losses are
pytorch-metric-learning's (their class weights train with the network). Faces are rendered at 64 px; a
model crops the central 75 % (the face, as an aligner would) and reads it at 32x32, which keeps the
networks cheap on CPU and matches the 32 px embedded releases; 30 % of every batch is softened (3x3
box blur) so the models stay robust to released images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from decobench.evaluation.identification import (attribute_only_ranks, hit_rates, match_ranks,
                                                  verification_accuracy)
from decobench.models.fr.nets import FRNet

DOMAIN = "synthfaces-fr"
IDENTITY_RANGES = {"train": (0, 1800), "val": (1800, 2000), "enrolled": (2000, 2500), "distractors": (2500, 3200)}
PROBES_PER_ENROLLED = 4
DISTRACTOR_IMAGES = 15  # per distractor identity: 700 x 15 = 10,500 distractor images


@dataclass(frozen=True)
class ZooSpec:
    name: str
    family: str          # resnet | mobilenet | senet
    loss: str            # arcface | cosface | softmax | subcenter_arcface
    epochs: int = 3
    dim: int = 128
    input_size: int = 32
    images_per_identity: int = 60
    batch: int = 256
    lr: float = 1e-2
    seed: int = 0


def make_loss(name: str, n_classes: int, dim: int):
    from pytorch_metric_learning import losses

    if name == "arcface":
        return losses.ArcFaceLoss(n_classes, dim, margin=28.6, scale=32)
    if name == "cosface":
        return losses.CosFaceLoss(n_classes, dim, margin=0.35, scale=32)
    if name == "softmax":
        return losses.NormalizedSoftmaxLoss(n_classes, dim, temperature=0.05)
    if name == "subcenter_arcface":
        return losses.SubCenterArcFaceLoss(n_classes, dim, margin=28.6, scale=32, sub_centers=3)
    raise ValueError(f"unknown FR loss {name!r}; choose arcface, cosface, softmax or subcenter_arcface")


class FRData:
    """Rendered synthfaces-fr images (uint8, 64 px; the models crop the face and read it at 32 px)."""

    def __init__(self, size: int = 64):
        from decobench.data.synthfaces import DOMAINS, build_population, render_faces

        self.pop = build_population(DOMAINS[DOMAIN])
        self.labels = self.pop.labels
        self.size = size
        self._render = lambda idx: render_faces(self.pop, idx, size, supersample=max(1, 64 // size))[0]
        self._cache: dict[str, np.ndarray] = {}

    def rows(self, part: str, per_identity: int | None = None) -> np.ndarray:
        lo, hi = IDENTITY_RANGES[part]
        ident = self.labels["identity"].to_numpy()
        rows = np.flatnonzero((ident >= lo) & (ident < hi))
        if per_identity is not None:
            k = rows - rows.min()
            rows = rows[(k % self.pop.config.images_per_identity) < per_identity]
        return rows

    def images(self, rows: np.ndarray) -> np.ndarray:
        return self._render(rows)


def to_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


def _degrade(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Soften 30 % of the batch (a 3x3 box blur): released images are smoother than real ones."""
    pick = torch.rand(len(x), generator=g) < 0.3
    if pick.any():
        x = x.clone()
        x[pick] = F.avg_pool2d(F.pad(x[pick], (1, 1, 1, 1), mode="replicate"), 3, 1)
    return x


@torch.no_grad()
def embed(net: FRNet, x01: torch.Tensor, batch: int = 512) -> torch.Tensor:
    net.eval()
    return torch.cat([net.embed_tensor(x01[i:i + batch]) for i in range(0, len(x01), batch)])


def _val_rank1(net: FRNet, data: FRData, cache: dict) -> float:
    if "val" not in cache:
        rows = data.rows("val", per_identity=2)
        cache["val"] = (to_unit(data.images(rows)), data.labels["identity"].to_numpy()[rows])
    x, ids = cache["val"]
    e = embed(net, x)
    probe, gal = slice(0, None, 2), slice(1, None, 2)
    return hit_rates(match_ranks(e[probe], ids[probe], e[gal], ids[gal]), (1,))[1]


def train_zoo_model(spec: ZooSpec, data: FRData, log=print) -> tuple[FRNet, dict]:
    """Train one zoo model; the epoch is chosen on validation identities' rank-1."""
    t0 = time.time()
    torch.manual_seed(spec.seed)
    rows = data.rows("train", spec.images_per_identity)
    x = data.images(rows)  # uint8; converted batch by batch (a hundred thousand faces)
    y = torch.as_tensor(data.labels["identity"].to_numpy()[rows] - IDENTITY_RANGES["train"][0])
    n_classes = IDENTITY_RANGES["train"][1] - IDENTITY_RANGES["train"][0]
    net = FRNet(spec.family, spec.dim, spec.input_size)
    loss_fn = make_loss(spec.loss, n_classes, spec.dim)
    opt = torch.optim.AdamW([{"params": net.parameters(), "weight_decay": 5e-4},
                             {"params": loss_fn.parameters(), "weight_decay": 0.0}], lr=spec.lr)
    steps_per_epoch = len(x) // spec.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=spec.epochs * steps_per_epoch,
                                                pct_start=0.15)
    g = torch.Generator().manual_seed(spec.seed)
    best, history, cache = (-1.0, None), [], {}
    for epoch in range(spec.epochs):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        losses = []
        for i in range(steps_per_epoch):
            b = perm[i * spec.batch:(i + 1) * spec.batch]
            emb = net(net.prepare(_degrade(to_unit(x[b.numpy()]), g)))
            loss = loss_fn(emb, y[b])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{spec.name}: non-finite loss at epoch {epoch + 1} step {i}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        r1 = _val_rank1(net, data, cache)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_rank1": r1})
        log(f"{spec.name}: epoch {epoch + 1}/{spec.epochs} loss {np.mean(losses):.3f} val rank-1 {100 * r1:.1f} % "
            f"({time.time() - t0:.0f} s)")
        if r1 > best[0]:
            best = (r1, {k: v.detach().clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[1])
    net.eval()
    return net, {"history": history, "selected_epoch": int(np.argmax([h["val_rank1"] for h in history]) + 1),
                 "train_images": int(len(x)), "train_identities": n_classes, "train_s": round(time.time() - t0, 1)}


def identity_protocol(data: FRData) -> dict:
    """Rows of the calibration search: probes, gallery (enrolled + distractors), their identities and attributes."""
    enrolled = data.rows("enrolled", 1 + PROBES_PER_ENROLLED)
    per = 1 + PROBES_PER_ENROLLED
    first = enrolled[np.arange(len(enrolled)) % per == 0]
    probes = enrolled[np.arange(len(enrolled)) % per != 0]
    gallery = np.concatenate([first, data.rows("distractors", DISTRACTOR_IMAGES)])
    lab = data.labels
    attrs = lambda r: lab.iloc[r][["race", "gender", "age"]].to_numpy()  # noqa: E731
    ident = lab["identity"].to_numpy()
    return {"probe_rows": probes, "gallery_rows": gallery, "probe_ids": ident[probes], "gallery_ids": ident[gallery],
            "probe_attrs": attrs(probes), "gallery_attrs": attrs(gallery)}


def calibrate_identities(net: FRNet, data: FRData, proto: dict, cache: dict) -> dict:
    """Rank-1/5 of the 1:N search and verification accuracy (threshold chosen on validation identities)."""
    if "probe" not in cache:
        cache.update({k: to_unit(data.images(proto[f"{k}_rows"])) for k in ("probe", "gallery")})
        cache["val_all"] = to_unit(data.images(data.rows("val")))
    ep, eg = embed(net, cache["probe"]), embed(net, cache["gallery"])
    hr = hit_rates(match_ranks(ep, proto["probe_ids"], eg, proto["gallery_ids"]))
    _, thr = verification_accuracy(embed(net, cache["val_all"]), data.labels["identity"].to_numpy()[data.rows("val")],
                                   3000, 1)
    n_enrolled = len(proto["probe_ids"]) // PROBES_PER_ENROLLED
    ident = np.concatenate([proto["probe_ids"], proto["gallery_ids"][:n_enrolled]])
    acc, _ = verification_accuracy(torch.cat([ep, eg[:n_enrolled]]), ident, 3000, 2, threshold=thr)
    return {"rank1": hr[1], "rank5": hr[5], "verification_accuracy": acc, "verification_threshold": thr}


def attribute_floor(proto: dict) -> dict:
    ranks = attribute_only_ranks(proto["probe_attrs"], proto["probe_ids"], proto["gallery_attrs"], proto["gallery_ids"])
    hr = hit_rates(ranks)
    return {"rank1": hr[1], "rank5": hr[5]}
