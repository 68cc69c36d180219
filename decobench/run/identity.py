"""What names a run and what it computes with: its folder (config hash and where it ran), the method's code
version, the attack suite it runs, and how it executes (``Execution``, which changes no number)."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from decobench.io import files_digest
from decobench.registry import attacks as attack_registry
from decobench.run.config import ConfigError, RunConfig, config_hash, in_suite_order
from decobench.run.lora_backbone import LoraBackbone
from decobench.run.train import Trainer


@dataclass(frozen=True)
class Execution:
    """How a run executes, not what it computes (like ``device``): not in the config hash; the options
    that are on are recorded in result.json's ``hardware``. Measured in benchmarks/results/sd15_gpu_*.json."""

    compile_unet: bool = False  # torch.compile the released UNet (release, and attacks that query it)
    gradient_checkpointing: bool = False  # recompute UNet activations in the LoRA's backward pass

    def record(self) -> dict:
        return {k: True for k, v in asdict(self).items() if v}


def code_digest(*classes) -> str:
    """sha256 of the source files defining ``classes`` and their decobench/plugin bases: a code change
    invalidates what they computed (CE+Mask also depends on ce.py and base.py)."""
    files = sorted({inspect.getsourcefile(c) for cls in classes for c in cls.__mro__
                    if c.__module__.split(".")[0] not in ("torch", "builtins")})
    return files_digest({Path(f).name: f for f in files})  # by file name, as results have always recorded it


def method_version(cls, track: str = "data") -> str:
    """The method's declared version and the digest of the code that trains it: the method, the trainer, the
    track's backbone (LoRA or face encoder), and for DP methods the DP code."""
    from decobench.run.dp import PrivateTraining
    from decobench.run.encoder_backbone import EncoderBackbone

    dp = (PrivateTraining,) if cls.trains_privately() else ()
    backbone = EncoderBackbone if track == "model" else LoraBackbone
    return f"{cls.version}:{code_digest(cls, Trainer, backbone, *dp)}"


# where a run's numbers come from beyond its config; the embedded default on CPU adds nothing to the folder name
DEFAULT_WHERE = {"base": "tiny-synthface", "data": "embedded", "device": "cpu"}


def where_of(base_name: str = "tiny-synthface", data_root=None, device: str = "auto", track: str = "data") -> dict:
    """The base model (data track), real or embedded data, and the device type (bf16 on CUDA) of a run."""
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    return {"base": base_name if track == "data" else DEFAULT_WHERE["base"],  # model, cloak: no base model
            "data": "real" if data_root else "embedded", "device": torch.device(dev).type}


def where_tag(where: dict | None) -> str:
    """'' for the embedded default on CPU, else '-' and a short hash of what differs from it."""
    odd = {k: v for k, v in (where or {}).items() if DEFAULT_WHERE.get(k) != v}
    return "-" + config_hash(odd)[:8] if odd else ""


def run_folder(out: Path, setup: str, method: str, regime: str, cfg, seed: int, where: dict | None = None) -> Path:
    """Runs that differ in anything that changes their numbers never share a folder: the config's hash, and
    what ``where`` says differs from the embedded default on CPU (sd15, real data, CUDA)."""
    return (out / setup / method / f"{regime}-{cfg.profile}-{cfg.train.prompt_policy}-{cfg.hash()[:10]}"
            f"{where_tag(where)}" / f"seed{seed}")


def with_attacks(cfg: RunConfig, track: str, attacks) -> RunConfig:
    """The config with ``--attacks`` written into it (eval.attacks, or eval.model_attacks on the model track), so
    runs with other attack suites hash to other folders; the default suite leaves the config as it was."""
    if not attacks:
        return cfg
    field = "model_attacks" if track == "model" else "attacks"
    return cfg.model_copy(update={"eval": cfg.eval.model_copy(update={field: in_suite_order(
        attacks, getattr(cfg.eval, field))})})


def select_attacks(names, kind: str = "data"):
    out = []
    for n in names:
        entry = attack_registry.entry(n)
        if kind not in entry.obj.accepts:
            raise ConfigError(f"attack {n!r} accepts {', '.join(entry.obj.accepts)} releases, not {kind}")
        out.append(entry)
    return out
