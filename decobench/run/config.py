"""Run configuration: one typed model (pydantic), three profiles, ``--set`` overrides parsed and checked.

Every value is typed and range-checked; an unknown key or a bad value is a :class:`ConfigError` that
lists every problem by field with the valid keys or the range. Keys: ``lr`` or ``train.lr`` (training),
``release.*``, ``eval.*``, ``eval.classifier.*``, ``method.*`` (the method's own ``Params``), and the
top-level ``sensitive`` / ``resolution``.

The paper profile follows DECO-Bench A.3. The CPU profiles keep its structure (AdamW, constant LR after
warm-up, clipping, selection on V) and scale steps and data down; they take ~100x fewer optimiser
steps, so their LoRA learning rate is raised (``CPU_LR``; README says so).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from decobench.evaluation.classifier import PROFILES as CLASSIFIER_PROFILES
from decobench.evaluation.classifier import ClassifierConfig
from decobench.models.prompts import POLICIES

SENSITIVE = ("race", "gender", "age")


class ConfigError(Exception):
    """A configuration value given by the user is unknown or out of range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(_Section):
    lr: float | None = Field(None, gt=0, le=1, description="LoRA LR; None: the profile's for the method")
    adversary_lr: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0, le=1)
    warmup_steps: int = Field(200, ge=0)
    max_steps: int = Field(20000, ge=1)
    batch_size: int = Field(128, ge=2)
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(200, ge=1)
    patience: int = Field(5, ge=1, description="evaluations on V without improvement before stopping")
    min_delta: float = Field(1e-4, ge=0)
    select_after: float = Field(0.5, ge=0, le=1, description="fraction of max_steps before a checkpoint "
                                "may be selected or training may stop")
    select_on: Literal["generator_objective", "val_mse"] = "generator_objective"
    lora_rank: int = Field(4, ge=1, le=256)
    prompt_policy: Literal[POLICIES] = "paper"  # type: ignore[valid-type]
    max_train_images: int | None = Field(None, ge=1)
    max_val_images: int | None = Field(None, ge=1)


class ReleaseConfig(_Section):
    strength: float = Field(0.75, gt=0, le=1)
    guidance_scale: float = Field(7.5, ge=0, le=50)
    num_inference_steps: int = Field(50, ge=1, le=1000)
    batch_size: int = Field(32, ge=1)
    scheduler: Literal["ddim", "dpm"] = "ddim"
    lora_scale: float = Field(1.0, ge=0, le=10)
    max_images_per_split: int | None = Field(None, ge=1)


class EvalConfig(_Section):
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    attacks: tuple[str, ...] = ("cls", "pt", "probe", "quality", "identity_linkage", "mia_generator",
                                "release_inversion")
    max_test_images: int | None = Field(None, ge=1)
    max_gen_val_images: int | None = Field(None, ge=1)
    feature_timestep: int = Field(100, ge=0, le=999, description="noise level of PT / probe features (the "
                                  "empty prompt; the training prompt's figure is a second metric)")
    probe_epochs: int = Field(200, ge=1)
    bootstrap: int = Field(1000, ge=100, le=100000, description="bootstrap resamples for confidence intervals")
    quality_subsets: int = Field(50, ge=1, description="KID subsets")
    mia_samples: int = Field(1000, ge=10, description="scored members and as many non-members (membership "
                             "inference on the released LoRA)")
    mia_calibration_samples: int = Field(300, ge=10, description="members and non-members, disjoint from the "
                                         "scored ones, on which timesteps and thresholds are chosen")
    mia_draws: int = Field(4, ge=1, le=64, description="seeded noise draws averaged per example")
    inversion_aux_images: int = Field(1500, ge=10, description="attacker's auxiliary images that train the inversion "
                                      "decoder: released through the LoRA (release_inversion) or encoded by the "
                                      "released encoder (feature_inversion)")
    inversion_epochs: int = Field(20, ge=1)
    fr_models: tuple[str, ...] = Field(("resnet-arcface", "resnet-cosface", "resnet-softmax", "mobilenet-softmax",
                                        "senet-arcface", "senet-cosface"),
                                       description="face-recognition models of identity attacks (zoo names, dlib, "
                                       "torchscript:<path>@<size>)")
    linkage_distractors: int = Field(5000, ge=0, description="gallery images of people outside the release")
    model_attacks: tuple[str, ...] = ("probe", "heads", "mia_model", "feature_inversion")
    mia_references: int = Field(4, ge=0, le=256, description="reference models of mia_model (LiRA, RMIA), trained "
                                "by the release's own recipe")

    @field_validator("fr_models", mode="before")
    @classmethod
    def _known_fr_models(cls, v):
        from decobench.models.fr.zoo import SPECS

        names = (v,) if isinstance(v, str) else tuple(v)
        bad = [n for n in names if n not in SPECS and n != "dlib" and not n.startswith("torchscript:")]
        if bad or not names:
            raise ValueError(f"unknown FR model(s) {', '.join(bad) or '(none given)'}; choose among "
                             f"{', '.join(SPECS)}, dlib, torchscript:<path>@<size>")
        return names


class ModelTrackConfig(_Section):
    """The model track's released encoder (``decobench run --track model``)."""

    lr: float = Field(1e-3, gt=0, le=1, description="encoder + heads learning rate (AdamW)")
    image_size: int = Field(32, ge=16, le=256, multiple_of=8)
    widths: tuple[int, ...] = Field((32, 64, 128, 256), min_length=2, max_length=6)


class RunConfig(_Section):
    profile: str
    sensitive: Literal[SENSITIVE] = "race"  # type: ignore[valid-type]
    resolution: int | None = Field(None, ge=16, le=1024, multiple_of=8,
                                   description="training and release resolution; None: the base's default")
    train: TrainConfig = Field(default_factory=TrainConfig)
    release: ReleaseConfig = Field(default_factory=ReleaseConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    model: ModelTrackConfig = Field(default_factory=ModelTrackConfig)
    method: dict = Field(default_factory=dict, description="the method's Params, validated by the method")
    faces: Literal["all", "frontal"] = Field("all", description="frontal: DECO-Bench A.2, every split keeps its "
                                             "frontal faces only (SynthFaces' profile flag; dlib's detector on "
                                             "real data)")

    def as_dict(self) -> dict:
        """The settings; ``faces`` only when not the default, so configs from before it existed hash as they did."""
        d = self.model_dump(mode="json")
        if d["faces"] == "all":
            del d["faces"]
        return d

    def hash(self) -> str:
        return config_hash(self.as_dict())


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def in_suite_order(attacks, default) -> tuple[str, ...]:
    """The attacks in the default suite's order, any others after them sorted: --attacks pt,cls and cls,pt are
    one suite (one folder, one key)."""
    chosen = dict.fromkeys(attacks)
    return tuple(a for a in default if a in chosen) + tuple(sorted(a for a in chosen if a not in default))


PROFILES = {
    # release batch 256: 48 images/s on an H100 (42 at 128), benchmarks/results/sd15_gpu_*.json
    "paper": RunConfig(profile="paper", release=ReleaseConfig(batch_size=256)),
    "embedded": RunConfig(
        profile="embedded",
        train=TrainConfig(max_steps=250, batch_size=64, warmup_steps=25, eval_every=25, patience=3,
                          max_train_images=6000, max_val_images=512),
        release=ReleaseConfig(num_inference_steps=16, batch_size=64, max_images_per_split=800),
        # release_inversion is opt-in here (--attacks ...,release_inversion): README gives its cost
        eval=EvalConfig(classifier=CLASSIFIER_PROFILES["embedded"], max_test_images=2000, max_gen_val_images=500,
                        probe_epochs=100, mia_samples=400, mia_calibration_samples=150, mia_draws=2,
                        attacks=("cls", "pt", "probe", "quality", "identity_linkage", "mia_generator"))),
    "quick": RunConfig(
        profile="quick",
        train=TrainConfig(max_steps=60, batch_size=32, warmup_steps=10, eval_every=20, patience=2,
                          max_train_images=600, max_val_images=128),
        release=ReleaseConfig(num_inference_steps=8, batch_size=64, max_images_per_split=200),
        eval=EvalConfig(classifier=CLASSIFIER_PROFILES["quick"], max_test_images=300, max_gen_val_images=100,
                        probe_epochs=50, bootstrap=200, quality_subsets=10, mia_samples=100,
                        mia_calibration_samples=40, mia_draws=1, inversion_aux_images=200, inversion_epochs=4,
                        linkage_distractors=500)),
}

# CPU profiles take ~100x fewer steps than the paper's; their LoRA LR is raised accordingly
CPU_LR = {"baseline": 1e-3, "ce": 1e-3, "ce_mask": 1e-3, "metric": 1e-3, "ce_dp": 1e-3}


def _parse_scalar(raw):
    """``--set`` values arrive as strings; pydantic converts them by the field's type."""
    if isinstance(raw, str) and raw.strip().lower() in ("none", "null"):
        return None
    if isinstance(raw, str) and "," in raw:
        return [p.strip() for p in raw.split(",") if p.strip()]
    return raw


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
        elif name not in ("method", "profile"):
            out.append(prefix + name)
    return out


def _format(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        where = prefix + ".".join(str(p) for p in e["loc"])
        lines.append(f"{where}={e.get('input')!r}: {e['msg']}")
    return lines


def resolve(profile: str, method_cls, method_name: str, overrides: dict | None = None,
            sensitive: str | None = None):
    """Profile + overrides -> (RunConfig, method Params). Raises ConfigError listing every problem."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    data = PROFILES[profile].as_dict()
    if data["train"]["lr"] is None:
        data["train"]["lr"] = (method_cls.paper_lr if profile == "paper"
                               else CPU_LR.get(method_name, 10 * method_cls.paper_lr))
    if sensitive is not None:
        data["sensitive"] = sensitive
    valid = set(_keys(RunConfig))
    method_keys = sorted(method_cls.Params.model_fields)
    problems, method_values = [], {}
    for key, raw in (overrides or {}).items():
        if key.startswith("method."):
            leaf = key.removeprefix("method.")
            if leaf not in method_keys:
                problems.append(f"unknown key {key!r}; {method_name} takes: "
                                f"{', '.join('method.' + k for k in method_keys) or 'no method keys'}")
            else:
                method_values[leaf] = _parse_scalar(raw)
            continue
        full = key if key in valid else f"train.{key}"
        if full not in valid:
            problems.append(f"unknown key {key!r}; valid keys: {', '.join(sorted(valid))}, method.<key>")
            continue
        node = data
        *path, leaf = full.split(".")
        for p in path:
            node = node[p]
        node[leaf] = _parse_scalar(raw)
    cfg = params = None
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        problems += _format(exc)
    try:
        params = method_cls.Params.model_validate(method_values)
    except ValidationError as exc:
        problems += _format(exc, "method.")
    if problems:
        raise ConfigError("bad configuration: " + "; ".join(problems))
    cfg = cfg.model_copy(update={"method": params.model_dump(mode="json")})
    return cfg, params
