"""Run configuration: three profiles (quick, embedded, paper), resolved into one hashed dict.

The paper profile follows DECO-Bench A.3. The CPU profiles keep the structure (AdamW, constant LR
after warm-up, clipping, early stopping on V) and scale steps and data down; because they take about
a hundred times fewer optimiser steps, they use a larger LoRA learning rate (documented in README).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from decobench.evaluation.classifier import PROFILES as CLASSIFIER_PROFILES
from decobench.evaluation.classifier import ClassifierConfig


@dataclass(frozen=True)
class TrainConfig:
    lr: float | None = None            # None: the method's paper_lr (1e-5 CE/CE+Mask, 1e-4 Metric)
    adversary_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 20000
    batch_size: int = 128
    grad_clip: float = 1.0
    eval_every: int = 200
    patience: int = 5                  # evaluations on V without improvement before stopping
    min_delta: float = 1e-4
    lora_rank: int = 4
    adv_weight: float = 1.0
    margin: float = 0.3
    mask_ratio: float = 0.6
    temperature: float = 1 / 30
    triplets: str = "semihard"
    prompt_policy: str = "with_race"
    max_train_images: int | None = None
    max_val_images: int | None = None


@dataclass(frozen=True)
class ReleaseConfig:
    strength: float = 0.75
    guidance_scale: float = 7.5
    num_inference_steps: int = 50
    batch_size: int = 32
    scheduler: str = "ddim"
    lora_scale: float = 1.0
    max_images_per_split: int | None = None


@dataclass(frozen=True)
class EvalConfig:
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    max_test_images: int | None = None
    max_gen_val_images: int | None = None
    pt_timestep: int | None = None     # noise level for PT / probe features; None: training's (seeded)
    probe_epochs: int = 200
    fid_batch: int = 64


@dataclass(frozen=True)
class RunConfig:
    profile: str
    train: TrainConfig
    release: ReleaseConfig
    eval: EvalConfig

    def as_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        return config_hash(self.as_dict())


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


PROFILES = {
    "paper": RunConfig("paper", TrainConfig(), ReleaseConfig(), EvalConfig()),
    "embedded": RunConfig(
        "embedded",
        TrainConfig(lr=None, max_steps=400, batch_size=64, warmup_steps=40, eval_every=100, patience=3,
                     max_train_images=6000, max_val_images=512),
        ReleaseConfig(num_inference_steps=20, batch_size=64, max_images_per_split=1500),
        EvalConfig(classifier=replace(CLASSIFIER_PROFILES["embedded"], max_train_images=None, max_epochs=10,
                                      patience=4),
                   max_test_images=1500, max_gen_val_images=500, probe_epochs=100)),
    "quick": RunConfig(
        "quick",
        TrainConfig(lr=None, max_steps=60, batch_size=32, warmup_steps=10, eval_every=20, patience=2,
                    max_train_images=600, max_val_images=128),
        ReleaseConfig(num_inference_steps=8, batch_size=64, max_images_per_split=200),
        EvalConfig(classifier=replace(CLASSIFIER_PROFILES["quick"], max_train_images=None, max_epochs=3,
                                      patience=2),
                   max_test_images=300, max_gen_val_images=100, probe_epochs=50)),
}

# CPU profiles take ~100x fewer steps than the paper's; their LoRA LR is raised accordingly
CPU_LR = {"baseline": 1e-3, "ce": 1e-3, "ce_mask": 1e-3, "metric": 1e-3}


def resolve(profile: str, method_cls, method_name: str, overrides: dict | None = None) -> RunConfig:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = PROFILES[profile]
    lr = cfg.train.lr
    if lr is None:
        lr = method_cls.paper_lr if profile == "paper" else CPU_LR.get(method_name, 10 * method_cls.paper_lr)
    cfg = replace(cfg, train=replace(cfg.train, lr=lr))
    # overrides: "key" (training) or "section.key" (train, release, eval, eval.classifier)
    sections: dict[str, dict] = {}
    for key, value in (overrides or {}).items():
        path, _, leaf = key.rpartition(".")
        sections.setdefault(path or "train", {})[leaf] = value
    for path, values in sorted(sections.items(), key=lambda kv: -kv[0].count(".")):
        cfg = _replace_at(cfg, path.split("."), values)
    return cfg


def _replace_at(obj, path: list[str], values: dict):
    if not path:
        known = set(asdict(obj))
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown} for {type(obj).__name__}; known: {sorted(known)}")
        return replace(obj, **values)
    if not hasattr(obj, path[0]):
        raise ValueError(f"unknown config section {path[0]!r} in {type(obj).__name__}")
    return replace(obj, **{path[0]: _replace_at(getattr(obj, path[0]), path[1:], values)})
