"""``decobench run``: one method, one setup, one regime, one seed -> result.json.

dataset -> splits -> latents (cached, shared by methods) -> LoRA decoupling training -> release
(img2img of G_real, plus V / Tr for the larger regimes) -> CLS / PT / probe / Fréchet distance
-> result.json. Every stage is cached by content hash under ``<out>/.cache``; a killed run resumes
from its last finished stage.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

import decobench
from decobench.data.labels import CLASSES
from decobench.data.open import open_dataset
from decobench.evaluation.classifier import to_tensor
from decobench.evaluation.fid import frechet_distance, inception_fid, local_inception_weights, penultimate
from decobench.evaluation.probe import adversary_accuracy, linear_probe_accuracy
from decobench.io import atomic_write_json, sha256_file
from decobench.methods.base import MethodConfig
from decobench.models.base import load_base
from decobench.models.lora import lora_target_names, save_lora
from decobench.models.prompts import prompts_for
from decobench.registry import methods, setups
from decobench.results.schema import SCHEMA_VERSION, validate
from decobench.run import stages
from decobench.run.cache import StageCache
from decobench.run.config import resolve
from decobench.run.release import build_pipeline, load_released, release, save_released
from decobench.run.train import LatentSet, Trainer
from decobench.setups import EMBEDDED_ROLES, REAL_ROLES, REGIMES
from decobench.splits import load_split, split_hashes

PACKAGES = ("torch", "torchvision", "diffusers", "peft", "transformers", "accelerate", "opacus",
            "pytorch-metric-learning", "iterative-stratification", "torch-fidelity", "numpy")


def _commit() -> str:
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


def _versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _hardware(device) -> dict:
    hw = {"device": str(device), "machine": platform.machine(), "cpu_threads": torch.get_num_threads()}
    if str(device).startswith("cuda"):
        hw["gpu"] = torch.cuda.get_device_name(0)
    return hw


def _concat(sets: list[LatentSet]) -> LatentSet:
    return LatentSet(*(torch.cat([getattr(s, f) for s in sets]) for f in ("mean", "std", "text", "race")))


def run_benchmark(method: str, setup: str, regime: str = "G", seed: int = 0, profile: str = "embedded",
                  base_name: str = "tiny-synthface", base_path=None, out="runs", data_root=None,
                  device: str = "auto", overrides: dict | None = None, log=print) -> tuple[dict, Path]:
    t_all = time.time()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    method_entry = methods.entry(method)
    setup_obj = setups.get(setup)
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    cfg = resolve(profile, method_entry.obj, method, overrides)
    roles = REAL_ROLES if data_root else EMBEDDED_ROLES
    names = setup_obj.datasets(roles)
    root_of = (lambda n: Path(data_root) / n) if data_root else (lambda n: None)
    dsets = {n: open_dataset(n, root_of(n)) for n in {*names["train"], *names["evaluate"]}}
    out = Path(out)
    cache = StageCache(out / ".cache")
    run_dir = out / setup / method / f"seed{seed}"
    seconds: dict[str, float] = {}
    torch.manual_seed(seed)

    def timed(name, fn):
        t = time.time()
        r = fn()
        seconds[name] = round(seconds.get(name, 0.0) + time.time() - t, 2)
        return r

    base = timed("load_base", lambda: load_base(base_name, base_path, device=device))
    tr = cfg.train
    # -- latents of Tr / V of every training dataset (shared by all methods) ---------------------------
    def latents():
        trs, vs = [], []
        for n in names["train"]:
            ds = dsets[n]
            trs.append(stages.latent_set(cache, base, ds, "train",
                                         stages.subset_ids(load_split(n, "train"), tr.max_train_images),
                                         tr.prompt_policy, device))
            vs.append(stages.latent_set(cache, base, ds, "val",
                                        stages.subset_ids(load_split(n, "val"), tr.max_val_images),
                                        tr.prompt_policy, device))
        return _concat(trs), _concat(vs)
    train_set, val_set = timed("latents", latents)

    # -- method training --------------------------------------------------------------------------
    mcfg = MethodConfig(lr=tr.lr, adv_weight=tr.adv_weight, margin=tr.margin, mask_ratio=tr.mask_ratio,
                        temperature=tr.temperature, triplets=tr.triplets)
    targets = lora_target_names(base.unet)
    modules = dict(base.unet.named_modules())
    dims = [modules[t].out_channels for t in targets]
    method_obj = method_entry.obj(dims, len(CLASSES["race"]), mcfg)
    trainer = Trainer(base, method_obj, tr, device=device, seed=seed, log=log)
    counts = trainer.counts
    log(f"LoRA: {counts['lora_trainable']:,} trainable of {counts['unet_total']:,} UNet parameters "
        f"({counts['lora_percent']}%), on {len(targets)} proj_out layers; method adds "
        f"{counts['method_generator_params']:,} generator and {counts['method_adversary_params']:,} adversary params")
    train_inputs = {"method": method, "origin": method_entry.origin, "setup": setup, "seed": seed,
                    "train": cfg.as_dict()["train"], "base": base.name, "base_path": str(base.path),
                    "datasets": names["train"], "fingerprints": {n: dsets[n].fingerprint() for n in names["train"]}}

    def train():
        with cache.stage("train", train_inputs) as (folder, cached):
            if not cached:
                summary = trainer.fit(train_set, val_set)
                save_lora(base.unet, folder)
                state = {k: v.contiguous() for k, v in method_obj.state_dict().items()}
                if state:
                    save_file(state, str(folder / "method_modules.safetensors"))
                save_file({k: v.contiguous() for k, v in trainer.probe.state_dict().items()},
                          str(folder / "shadow_probe.safetensors"))
                atomic_write_json(folder / "training.json", summary)
        return cache.key("train", train_inputs)
    train_dir = timed("train", train)
    training = json.loads((train_dir / "training.json").read_text())
    if (train_dir / "method_modules.safetensors").is_file():
        method_obj.load_state_dict(load_file(str(train_dir / "method_modules.safetensors")))
    # reload LoRA weights from disk into the trainer's UNet (also when training was cached)
    _load_lora_into(base.unet, train_dir / "pytorch_lora_weights.safetensors")

    # -- PT and probe features (before fusing) ------------------------------------------------------
    evaluations = []
    ev = cfg.eval
    feats_by_ds = {}
    for n in names["evaluate"]:
        ds = dsets[n]
        g_ids = stages.subset_ids(load_split(n, "gen"), cfg.release.max_images_per_split)
        t_ids = stages.subset_ids(load_split(n, "test"), ev.max_test_images)
        lg = stages.latent_set(cache, base, ds, "gen", g_ids, tr.prompt_policy, device)
        lt = stages.latent_set(cache, base, ds, "test", t_ids, tr.prompt_policy, device)
        fg = timed("features", lambda: trainer.features(lg, ev.pt_timestep))
        ft = timed("features", lambda: trainer.features(lt, ev.pt_timestep))
        method_obj.cpu()
        pt = adversary_accuracy(method_obj, fg, trainer.hooks.dims, lg.race)
        probe = linear_probe_accuracy(fg, lg.race, ft, lt.race, len(CLASSES["race"]), ev.probe_epochs, seed)
        method_obj.to(device)
        feats_by_ds[n] = (pt, probe)
    trainer.hooks.remove()

    # -- release ----------------------------------------------------------------------------------
    base_fresh = load_base(base_name, base_path, device=device)  # unfused copy for the pipeline
    pipe, hook = build_pipeline(base_fresh, train_dir, cfg.release, method_obj, device)
    rel_dirs = {}
    # released images depend on the trained weights' content, not on where they were written
    weights_digest = {f.name: sha256_file(f) for f in sorted(train_dir.glob("*.safetensors"))}
    for n in names["evaluate"]:
        ds = dsets[n]
        for split in REGIMES[regime]:
            ids = stages.subset_ids(load_split(n, split), cfg.release.max_images_per_split)
            rows = ds.records.iloc[ds.index_of(ids)]
            prompts = prompts_for(rows, tr.prompt_policy)
            rin = {"weights": weights_digest, "dataset": n, "split": split, "ids": ids,
                   "release": cfg.as_dict()["release"], "seed": seed}

            def do_release():
                with cache.stage("release", rin) as (folder, cached):
                    if not cached:
                        imgs = release(pipe, ds.load_images(ids, base.resolution), prompts, cfg.release, seed,
                                       device, desc=f"release {n}/{split}")
                        save_released(folder, imgs, rows, prompts)
                return cache.key("release", rin)
            rel_dirs[(n, split)] = timed("release", do_release)
    if hook is not None:
        hook.remove()

    # -- evaluation -------------------------------------------------------------------------------
    ccfg = ev.classifier
    for n in names["evaluate"]:
        ds = dsets[n]
        gv_ids = stages.subset_ids(load_split(n, "gen_val"), ev.max_gen_val_images)
        t_ids = stages.subset_ids(load_split(n, "test"), ev.max_test_images)
        gv_rows, t_rows = ds.records.iloc[ds.index_of(gv_ids)], ds.records.iloc[ds.index_of(t_ids)]
        gv_img, t_img = ds.load_images(gv_ids, base.resolution), ds.load_images(t_ids, base.resolution)
        real_ids = sum((stages.subset_ids(load_split(n, s), cfg.release.max_images_per_split)
                        for s in REGIMES[regime]), [])
        real_rows = ds.records.iloc[ds.index_of(real_ids)]
        real_img = ds.load_images(real_ids, base.resolution)
        tag = {"kind": "baseline_real", "dataset": n, "fingerprint": ds.fingerprint(), "regime": regime,
               "ids": real_ids, "resolution": base.resolution}
        real_acc, real_epochs, real_models = timed("baseline_real", lambda: stages.train_attribute_classifiers(
            cache, tag, real_img, real_rows, gv_img, gv_rows, t_img, t_rows, ccfg, seed, device,
            f"Baseline (Real) {n}"))
        rel = [load_released(rel_dirs[(n, s)]) for s in REGIMES[regime]]
        rel_img = np.concatenate([r[0] for r in rel])
        rel_rows = pd.concat([r[1] for r in rel], ignore_index=True)
        tag = {"kind": "released", "dirs": [str(rel_dirs[(n, s)]) for s in REGIMES[regime]]}
        acc, epochs, _ = timed("classifiers", lambda: stages.train_attribute_classifiers(
            cache, tag, rel_img, rel_rows, gv_img, gv_rows, t_img, t_rows, ccfg, seed, device, f"{method} {n}"))
        # Fréchet distance: released G vs G_real
        g_rel = load_released(rel_dirs[(n, "gen")])[0]
        g_real = ds.load_images(stages.subset_ids(load_split(n, "gen"), cfg.release.max_images_per_split),
                                base.resolution)
        weights = local_inception_weights()
        if weights is not None:
            fid_key, fid_val = "fid", timed("fid", lambda: inception_fid(g_rel, g_real, weights, device))
            fid_note = "FID, torch-fidelity Inception-v3 (2015-12-05 weights from the local torch cache)"
        else:
            models = [real_models[a] for a in stages.ATTRS]
            fa = penultimate(models, to_tensor(g_rel, ccfg.image_size))
            fb = penultimate(models, to_tensor(g_real, ccfg.image_size))
            fid_key, fid_val = "fd_resnet18_real", frechet_distance(fa, fb)
            fid_note = ("Fréchet distance (torch-fidelity's formula) on penultimate features of this run's "
                        "Baseline (Real) ResNet18s; no Inception weights in the local torch cache; not FID")
        pt, probe = feats_by_ds[n]
        chance = {a: 1 / len(CLASSES[a]) for a in stages.ATTRS}
        metrics = {
            "privacy_cls_race": {"value": acc["race"], "direction": "lower_is_better", "chance": chance["race"]},
            "privacy_pt_race": {"value": pt, "direction": "lower_is_better", "chance": chance["race"],
                                **({"note": "n/a: this method has no adversary"} if pt is None else {})},
            "privacy_probe_race": {"value": probe, "direction": "lower_is_better", "chance": chance["race"],
                                   "note": "fresh linear probe on LoRA features: G_real -> Test"},
            "utility_cls_age": {"value": acc["age"], "direction": "higher_is_better", "chance": chance["age"]},
            "utility_cls_gender": {"value": acc["gender"], "direction": "higher_is_better",
                                   "chance": chance["gender"]},
            fid_key: {"value": fid_val, "direction": "lower_is_better", "note": fid_note},
        }
        evaluations.append({
            "dataset": n, "released_images": len(rel_img), "test_images": len(t_ids),
            "classifier_epochs": epochs, "metrics": metrics,
            "baseline_real": {"privacy_cls_race": real_acc["race"], "utility_cls_age": real_acc["age"],
                              "utility_cls_gender": real_acc["gender"], "classifier_epochs": real_epochs},
            "majority_class_rate": {a: float(t_rows[a].value_counts(normalize=True).max()) for a in stages.ATTRS},
        })

    seconds["total"] = round(time.time() - t_all, 2)
    result = {
        "schema_version": SCHEMA_VERSION, "method": method, "method_origin": method_entry.origin,
        "setup": setup, "regime": regime, "datasets": {k: list(v) for k, v in names.items()},
        "split_hashes": {n: split_hashes(n) for n in dsets}, "config": cfg.as_dict(), "config_hash": cfg.hash(),
        "seed": seed, "base_model": base.name, "decobench_version": decobench.__version__,
        "decobench_commit": _commit(), "packages": _versions(), "hardware": _hardware(device),
        "stage_seconds": seconds, "parameter_counts": counts,
        "training": {k: training[k] for k in ("steps", "best_val_mse")} | {"history": training["history"]},
        "evaluations": evaluations,
    }
    validate(result)
    run_dir.mkdir(parents=True, exist_ok=True)
    for f in ("pytorch_lora_weights.safetensors", "method_modules.safetensors"):
        if (train_dir / f).is_file():
            (run_dir / f).write_bytes((train_dir / f).read_bytes())
    atomic_write_json(run_dir / "result.json", result)
    return result, run_dir


def _load_lora_into(unet, path: Path) -> None:
    """Copy saved (diffusers-format) LoRA weights into the UNet's live peft adapters."""
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft import set_peft_model_state_dict

    sd = load_file(str(path))
    sd = {k.removeprefix("unet."): v for k, v in sd.items()}
    set_peft_model_state_dict(unet, convert_unet_state_dict_to_peft(sd), adapter_name="default")
