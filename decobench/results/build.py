"""Assemble a result file (schema v2) from what a run produced: provenance, config, metrics."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

import decobench
from decobench.results.aggregate import key_components
from decobench.results.schema import SCHEMA_VERSION, validate
from decobench.run.config import config_hash
from decobench.splits import split_hashes

PACKAGES = ("torch", "torchvision", "diffusers", "peft", "transformers", "accelerate", "opacus",
            "pytorch-metric-learning", "iterative-stratification", "torch-fidelity", "pydantic", "numpy")


def commit() -> str:
    """HEAD of the checkout decobench runs from, with "-dirty" when its tracked files differ from HEAD."""
    here = Path(decobench.__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, text=True, capture_output=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, text=True,
                               capture_output=True, check=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def hardware(device, execution: dict | None = None) -> dict:
    """``execution``: the execution options that are on (recorded only when on, so results made before
    an option existed stay what HEAD writes)."""
    hw = {"device": str(device), "machine": platform.machine(), "cpu_threads": torch.get_num_threads(),
          **(execution or {})}
    if str(device).startswith("cuda"):
        hw["gpu"] = torch.cuda.get_device_name(0)
    return hw


def comparability_key(result: dict) -> str:
    """Results are comparable only when every input except the method (and seed) is the same."""
    return config_hash(key_components(result))


def build_result(*, method, method_entry, method_version, setup, regime, seed, cfg, names, dsets, base, bkey, device,
                 suite, seconds, counts, training, evaluations, execution: dict | None = None,
                 track: str = "data") -> dict:
    result = {
        "schema_version": SCHEMA_VERSION, "track": track, "method": method, "method_origin": method_entry.origin,
        "method_version": method_version, "method_params": cfg.method, "setup": setup, "regime": regime,
        "sensitive": cfg.sensitive, "profile": cfg.profile, "prompt_policy": cfg.train.prompt_policy,
        "datasets": {k: list(v) for k, v in names.items()},
        "split_hashes": {n: split_hashes(n) for n in sorted(dsets)},
        "data_fingerprints": {n: dsets[n].fingerprint() for n in sorted(dsets)},
        "config": cfg.as_dict(), "config_hash": cfg.hash(), "seed": seed, "base_model": base.name,
        "base_weights": bkey["weights"], "resolution": base.resolution,
        "attacks": {e.name: {"version": e.obj.version, "origin": e.origin} for e in suite},
        "decobench_version": decobench.__version__, "decobench_commit": commit(), "packages": versions(),
        "hardware": hardware(device, execution), "precision": bkey["precision"], "stage_seconds": seconds,
        "parameter_counts": counts,
        "training": {k: training[k] for k in ("steps", "selected_step", "select_on", "select_from_step")}
        | {"history": training["history"]},
        "evaluations": evaluations,
    }
    if "dp" in training:  # DP-SGD: what Opacus's accountant needs to recompute ε, and what ε covers
        result["dp"] = training["dp"]
    result["comparability_key"] = comparability_key(result)
    validate(result)
    return result
