"""The attack interface and the typed release artefacts attacks run on.

The runner builds one release per evaluated dataset and runs the chosen attack suite over it. An attack
declares the release kinds it ``accepts`` (``data``, ``model``, ``cloak``) and never reaches into how
the method was trained: it sees what was released, the real splits it may use (G_real to train on,
G-val to select on, Test to score), and nothing else.

An attack returns an :class:`AttackResult`: named metrics (each with direction, chance, majority rate
and a CI, see :mod:`decobench.attacks.metrics`), optional reference figures (e.g. Baseline (Real) or a
real-vs-real floor) and info (epochs, sample sizes). Each attack also ships ``calibrate()``: a
known-answer check in which a planted leak must be found and an absent one must read chance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from decobench.io import atomic_write_json


@dataclass
class RealSplit:
    """Real images of one split (uint8 [N,H,W,3]) with their label rows."""

    images: np.ndarray
    labels: pd.DataFrame
    ids: list[str]

    @staticmethod
    def concat(splits: list["RealSplit"]) -> "RealSplit":
        return RealSplit(np.concatenate([s.images for s in splits]),
                         pd.concat([s.labels for s in splits], ignore_index=True), sum((s.ids for s in splits), []))

    def take(self, idx) -> "RealSplit":
        idx = np.asarray(idx, dtype=int)
        return RealSplit(self.images[idx], self.labels.iloc[idx].reset_index(drop=True), [self.ids[i] for i in idx])


@dataclass
class GeneratorAccess:
    """White-box access to the released generator, as DECO-Bench releases it (the LoRA and its base).

    ``eps(noisy_latents, t, text_states)`` runs the UNet with the released LoRA (and the method's release
    transform, e.g. CE+Mask's filter mask) in eval mode without gradients. Latents are VAE posterior
    means (the mode) times the VAE scaling factor; ``alphas_cumprod`` is the base scheduler's own
    (scaled-linear for SD). ``members``: images the LoRA trained on; ``nonmembers``: identity-disjoint
    images of the same distribution never trained on (the training dataset's Test split). Both carry
    their training-prompt text states (``text``) and every label; the null prompt is ``null_text``."""

    eps: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    alphas_cumprod: torch.Tensor          # [num_train_timesteps], float32, CPU
    members: "object"                     # decobench.run.train.LatentSet (mean is the VAE mode, unscaled)
    nonmembers: "object"                  # decobench.run.train.LatentSet
    scaling_factor: float
    null_text: torch.Tensor               # [1, tokens, dim]
    device: str = "cpu"
    # the public base model without the LoRA (same signature as eps): a reference for difficulty calibration
    eps_reference: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    # what identifies this generator and its member/non-member sets (the trained stage, release settings, ids):
    # attacks cache their answer under it, so a regime or setup that releases other images from the same
    # trained generator reuses it. None: never cached
    key: dict | None = None


@dataclass
class DataRelease:
    """The data track: a synthetic copy of real splits (img2img) and the LoRA that made it."""

    kind = "data"
    dataset: str
    sensitive: str
    utility: tuple[str, ...]
    n_classes: dict[str, int]
    released: RealSplit                      # released images of the regime's splits, labels of their sources
    released_gen: RealSplit                  # released G alone (quality metrics compare it with G_real)
    real: dict[str, RealSplit]               # "train_on" (the regime's real splits), "gen", "gen_val", "test"
    lora_dir: Path | None = None
    # pooled LoRA features of real images, keyed by (split, prompt): ("gen", "null"), ("test", "train"), ...
    features: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)
    # the method's trained adversary (Privacy PT): pooled features -> logits; None when it has none
    adversary: Callable[[torch.Tensor], torch.Tensor] | None = None
    fingerprint: str = ""                    # identifies the released content (cache keys of attacks)
    generator: GeneratorAccess | None = None  # white-box access to the released LoRA (membership inference)
    # the release mechanism as the attacker can run it with the released LoRA: (uint8 images, label rows)
    # -> uint8 released images (same prompts policy, strength, steps as the release)
    release_fn: Callable[[np.ndarray, pd.DataFrame], np.ndarray] | None = None
    # the attacker's own population (same distribution, disjoint from every split; None where none exists)
    auxiliary: RealSplit | None = None
    # a face-search gallery: other real images of every released identity (never a released image's source)
    # plus distractors of other people; ``labels["identity"]`` names them. None: the dataset has no identities
    identity_gallery: RealSplit | None = None


@dataclass
class ReleasedModel:
    """A released encoder and its task heads as an attacker queries them (eval mode, no gradients).

    ``encode(images)``: uint8 images [N, H, W, 3] -> features [N, d] (float32, CPU). ``heads(images)``:
    -> ``{task: logits [N, classes]}`` for the categorical tasks the model was trained on."""

    encode: Callable[[np.ndarray], torch.Tensor]
    heads: Callable[[np.ndarray], dict[str, torch.Tensor]]


@dataclass
class ModelRelease:
    """The model track: a trained encoder (a multi-task face model) is what is released.

    ``members`` are the images it trained on, ``nonmembers`` identity-disjoint images of the same
    distribution it never saw. ``recipe(train, seed)`` trains a *reference* model the same way on other
    data (same method, hyperparameters and step budget), so membership attacks never import the method.
    ``train_size``: the released model's number of training images (references are padded to it)."""

    kind = "model"
    dataset: str
    sensitive: str
    utility: tuple[str, ...]
    n_classes: dict[str, int]
    model: ReleasedModel
    real: dict[str, RealSplit]               # "gen" (attacker's labelled real data), "gen_val", "test"
    members: RealSplit
    nonmembers: RealSplit
    recipe: Callable[[RealSplit, int], ReleasedModel] | None = None
    train_size: int = 0
    auxiliary: RealSplit | None = None       # the attacker's own population (None where none exists)
    identity_gallery: RealSplit | None = None
    fingerprint: str = ""
    dp: dict | None = None                   # the release's DP record (result.json's ``dp``), if any


@dataclass
class CloakRelease:
    """The cloak track: what each protected person releases is their photos with their own mask on.

    ``data``: the people (crafting and test photos, distractors: :class:`decobench.cloaks.data.CloakData`);
    ``masks``: float [identities, 3, H, W] in [-eps, eps] of 1 (one mask per person); ``surrogate``: the zoo
    model the masks were crafted on (a target equal to it is white-box)."""

    kind = "cloak"
    data: object
    masks: torch.Tensor
    surrogate: str


@dataclass
class AttackResult:
    metrics: dict[str, dict]
    reference: dict[str, dict] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@dataclass
class CalibrationCase:
    attack: str
    case: str                     # "planted" or "absent"
    metric: str
    value: float
    ci: list[float]
    expect: str                   # what must hold, in words
    passed: bool


def accuracy_case(attack: str, case: str, m: dict) -> CalibrationCase:
    """A calibration case on an accuracy: planted must read above chance and majority, absent must not."""
    from decobench.attacks.metrics import reads_chance

    planted = case == "planted"
    return CalibrationCase(attack, case, "accuracy", m["value"], m["ci"],
                           "CI above chance and majority" if planted else "CI reaches chance or majority",
                           bool(reads_chance(m) != planted))


@dataclass
class AttackContext:
    """What the runner lends an attack: configuration, a stage cache, seed, device, a log."""

    cfg: object                   # decobench.run.config.EvalConfig
    seed: int = 0
    device: str = "cpu"
    cache: object | None = None   # decobench.run.cache.StageCache (None: no caching)
    log: Callable = print


def source_digest(*modules) -> str:
    """Digest of the modules' source files: a cached answer goes stale with the code that computed it."""
    from decobench.io import files_digest

    return files_digest({m.__name__: m.__file__ for m in modules})  # module names: two base.py never collide


def cached_result(ctx: AttackContext, stage: str, inputs: dict | None, compute: Callable[[], AttackResult]
                  ) -> AttackResult:
    """``compute()`` once per ``inputs`` in the runner's stage cache; always without a cache or inputs. The
    inputs must name everything the answer depends on (attack version, seed, settings, what it reads)."""
    if ctx.cache is None or inputs is None:
        return compute()
    with ctx.cache.stage(stage, inputs) as (folder, cached):
        if not cached:
            res = compute()
            atomic_write_json(folder / "result.json", {"metrics": res.metrics, "reference": res.reference,
                                                       "info": res.info})
    d = json.loads((ctx.cache.key(stage, inputs) / "result.json").read_text())
    return AttackResult(d["metrics"], reference=d["reference"], info=d["info"])


class Attack:
    """Base class: set ``accepts`` and ``version``, implement ``run`` and ``calibrate``."""

    accepts: tuple[str, ...] = ("data",)
    #: bump when the attack's output changes: it enters the comparability key and cache keys
    version: str = "1"

    def __init__(self, ctx: AttackContext):
        self.ctx = ctx

    def run(self, release) -> AttackResult:
        raise NotImplementedError

    @classmethod
    def preflight(cls, cfg) -> None:
        """Raise a clear error *before* the run trains anything when an asset the attack needs is missing."""

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        raise NotImplementedError


def attack_check(obj) -> str | None:
    if not (isinstance(obj, type) and issubclass(obj, Attack)):
        return "an attack plugin must be a subclass of decobench.attacks.base.Attack"
    if not obj.accepts or not set(obj.accepts) <= {"data", "model", "cloak"}:
        return f"accepts must name release kinds among data, model, cloak (got {obj.accepts!r})"
    if obj.calibrate is Attack.calibrate:
        return "it must implement calibrate(): a known-answer check (planted leak found, absent reads chance)"
    return None
