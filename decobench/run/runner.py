"""``decobench run``: one method, one setup, one regime, one seed -> result.json.

dataset -> splits -> latents (cached, shared by methods) -> LoRA decoupling training (method interface
v2) -> release (img2img of the regime's real splits) -> a typed :class:`DataRelease` per evaluated
dataset -> the attack suite -> result.json. Every stage is cached by content hash under
``<out>/.cache``; a killed run resumes from its last finished stage.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from decobench.attacks.base import AttackContext, DataRelease, GeneratorAccess, RealSplit
from decobench.data.frontal import frontal_ids
from decobench.data.open import open_dataset
from decobench.evaluation.identification import identity_gallery
from decobench.io import atomic_write_bytes, atomic_write_json, sha256_file
from decobench.methods.base import MethodSpec
from decobench.models.base import load_base
from decobench.models.lora import lora_target_names, save_lora
from decobench.models.prompts import prompts_for
from decobench.registry import methods, setups
from decobench.results.build import build_result
from decobench.run import stages
from decobench.run.cache import StageCache, file_lock
from decobench.run.config import ConfigError, config_hash, resolve
from decobench.run.distributed import SINGLE, Processes
from decobench.run.identity import Execution, method_version, run_folder, select_attacks, where_of, with_attacks
from decobench.run.release import build_pipeline, load_released, release, save_released
from decobench.run.train import LatentSet, Trainer
from decobench.setups import EMBEDDED_ROLES, REAL_ROLES, REGIMES
from decobench.splits import load_split


def run_benchmark(method: str, setup: str, regime: str = "G", seed: int = 0, profile: str = "embedded",
                  base_name: str = "tiny-synthface", base_path=None, out="runs", data_root=None,
                  device: str = "auto", overrides: dict | None = None, sensitive: str | None = None,
                  attacks: list[str] | None = None, log=print, execution: Execution = Execution(),
                  track: str = "data") -> tuple[dict, Path]:
    t_all = time.time()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    procs = Processes(device)  # several when started by accelerate launch / torchrun
    device, log = procs.device, (log if procs.is_main else (lambda *a, **k: None))
    method_entry = methods.entry(method)
    if track not in ("data", "model", "cloak"):
        raise ConfigError(f"unknown track {track!r}; choose data, model or cloak")
    if track not in method_entry.obj.tracks:
        raise ConfigError(f"{method} runs on the {', '.join(method_entry.obj.tracks)} track(s), not {track}")
    if procs.world > 1 and track != "data":
        raise ConfigError(f"the {track} track runs in one process; only the data track's training and release are "
                          f"split across processes (accelerate launch / torchrun)")
    if track == "cloak":
        from decobench.run.cloak_track import run_cloak

        return run_cloak(method, seed, profile, out, data_root, device, overrides, attacks, log,
                         where_of(base_name, data_root, device, track))
    setup_obj = setups.get(setup)
    if regime not in REGIMES and not (track == "model" and regime == "model"):
        raise ConfigError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    regime = "model" if track == "model" else regime  # the model track releases no data: no regime
    if track == "model" and {"lr", "train.lr"} & set(overrides or {}):
        raise ConfigError("on the model track the encoder's learning rate is model.lr (--set model.lr=...); "
                          "lr is the data track's LoRA rate")
    cfg, params = resolve(profile, method_entry.obj, method, overrides, sensitive)
    cfg = with_attacks(cfg, track, attacks)
    suite = select_attacks(cfg.eval.model_attacks if track == "model" else cfg.eval.attacks, track)
    if execution.gradient_checkpointing and method_entry.obj.dp_backbone:
        raise ConfigError(f"{method} trains its LoRA with DP-SGD, whose per-example gradients (torch.func) cannot "
                          f"pass through gradient checkpointing; run it without --gradient-checkpointing")
    for entry in suite:  # missing assets fail here, before anything trains
        entry.obj.preflight(cfg.eval)
    roles = REAL_ROLES if data_root else EMBEDDED_ROLES
    names = setup_obj.datasets(roles)
    dsets = {n: open_dataset(n, Path(data_root) / n if data_root else None) for n in {*names["train"], *names["evaluate"]}}

    fingerprints = {n: ds.fingerprint() for n, ds in dsets.items()}  # hashing the label table once per run

    out = Path(out)
    cache = StageCache(out / ".cache")

    def split_ids(n, split, k):
        ids = load_split(n, split, fingerprint=fingerprints[n])
        if cfg.faces == "frontal":  # DECO-Bench A.2: frontal faces only, in training and in evaluation
            ids = frontal_ids(dsets[n], ids, cache)
        return stages.subset_ids(ids, k)

    run_dir = run_folder(out, setup, method, regime, cfg, seed, where_of(base_name, data_root, device, track))
    with file_lock(run_dir.parent / f".seed{seed}.lock") if procs.is_main else nullcontext():
        if track == "model":
            return _run_model(method, method_entry, setup, seed, cfg, params, suite, names, dsets, split_ids, device,
                              cache, run_dir, t_all, log)
        return _run(method, method_entry, setup, regime, seed, cfg, params, suite, names, dsets, split_ids,
                    base_name, base_path, device, cache, run_dir, t_all, log, execution, procs)


def _run(method, method_entry, setup, regime, seed, cfg, params, suite, names, dsets, split_ids, base_name,
         base_path, device, cache, run_dir, t_all, log, execution, procs=SINGLE):
    seconds: dict[str, float] = {}
    torch.manual_seed(seed)

    def timed(name, fn):
        t = time.time()
        r = fn()
        seconds[name] = round(seconds.get(name, 0.0) + time.time() - t, 2)
        return r

    base = timed("load_base", lambda: load_base(base_name, base_path, device=device, resolution=cfg.resolution))
    bkey = stages.base_key(base, device)

    def latents(n, split, k):
        return stages.latent_set(cache, base, dsets[n], split, split_ids(n, split, k), cfg.train.prompt_policy,
                                 cfg.sensitive, device)

    if execution.gradient_checkpointing:
        base.unet.enable_gradient_checkpointing()
    trained = _train(method, method_entry, seed, cfg, params, names, dsets, split_ids, base, bkey, device,
                     cache, latents, timed, log, procs)
    rel_dirs, pipe, hook = _release(regime, seed, cfg, names, dsets, split_ids, base_name, base_path, base, bkey,
                                    device, cache, trained, timed, execution.compile_unet, procs)
    if not procs.is_main:  # the other processes helped train and release; the main one attacks and writes
        return None, run_dir
    try:
        evaluations = _attack(regime, seed, cfg, suite, names, dsets, split_ids, base, device, cache, trained,
                              rel_dirs, timed, log, pipe, latents)
    finally:
        if hook is not None:
            hook.remove()
    seconds["total"] = round(time.time() - t_all, 2)
    result = build_result(method=method, method_entry=method_entry, method_version=trained["method_version"],
                          setup=setup, regime=regime, seed=seed, cfg=cfg, names=names, dsets=dsets, base=base,
                          bkey=bkey, device=device, suite=suite, seconds=seconds, counts=trained["counts"],
                          training=trained["training"], evaluations=evaluations,
                          execution={**execution.record(), **({"processes": procs.world} if procs.world > 1 else {})})
    run_dir.mkdir(parents=True, exist_ok=True)
    for f in ("pytorch_lora_weights.safetensors", "method_modules.safetensors", "training.json"):
        if (trained["dir"] / f).is_file():
            atomic_write_bytes(run_dir / f, (trained["dir"] / f).read_bytes())
    atomic_write_json(run_dir / "result.json", result)
    return result, run_dir


def _run_model(method, method_entry, setup, seed, cfg, params, suite, names, dsets, split_ids, device, cache, run_dir,
               t_all, log):
    """The model track: train (or load) the released encoder, run the model-track suite, write result.json."""
    from types import SimpleNamespace

    from decobench.run.model_track import run_model_track

    torch.manual_seed(seed)
    m = cfg.model
    cfg_model = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": m.lr})})
    evaluations, training, counts = run_model_track(
        method, method_entry, params, method_version(method_entry.obj, "model"), cfg_model, seed, suite, names, dsets,
        split_ids, device, cache, m.image_size, m.widths, log)
    seconds = counts.pop("seconds")
    seconds["total"] = round(time.time() - t_all, 2)
    encoder = SimpleNamespace(name=f"face-encoder{list(m.widths)}", resolution=m.image_size)
    bkey = {"weights": "none: trained from scratch on the training split", "precision": "fp32"}
    result = build_result(method=method, method_entry=method_entry, method_version=method_version(method_entry.obj, "model"),
                          setup=setup, regime="model", seed=seed, cfg=cfg_model, names=names, dsets=dsets, base=encoder,
                          bkey=bkey, device=device, suite=suite, seconds=seconds, counts=counts, training=training,
                          evaluations=evaluations, track="model")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "training.json", training)  # the whole history (losses, V figures, DPLH's sigmas)
    atomic_write_json(run_dir / "result.json", result)
    return result, run_dir


def _train(method, method_entry, seed, cfg, params, names, dsets, split_ids, base, bkey, device, cache,
           latents, timed, log, procs=SINGLE) -> dict:
    """Train (or load from the cache) the method's LoRA; then LoRA features of real G and Test."""
    tr, sensitive = cfg.train, cfg.sensitive
    train_set, val_set = timed("latents", lambda: (
        LatentSet.concat([latents(n, "train", tr.max_train_images) for n in names["train"]]),
        LatentSet.concat([latents(n, "val", tr.max_val_images) for n in names["train"]])))
    targets = lora_target_names(base.unet)
    modules = dict(base.unet.named_modules())
    spec = MethodSpec([modules[t].out_channels for t in targets],
                      stages.n_classes(dsets[names["train"][0]].records), sensitive,
                      tuple(a for a in stages.ATTRS if a != sensitive),
                      extra={"source_shape": tuple(train_set.mean.shape[1:])})
    method_obj = method_entry.obj(spec, params)
    if procs.world > 1:
        from decobench.run.parallel_train import ParallelTrainer

        trainer = ParallelTrainer(base, method_obj, tr, sensitive=sensitive, device=device, seed=seed, log=log,
                                  procs=procs)
    else:
        trainer = Trainer(base, method_obj, tr, sensitive=sensitive, device=device, seed=seed, log=log)
    counts = trainer.counts
    log(f"LoRA: {counts['lora_trainable']:,} trainable of {counts['unet_total']:,} UNet parameters "
        f"({counts['lora_percent']}%) on {len(targets)} proj_out layers; method players: "
        + ", ".join(f"{k.removeprefix('method_').removesuffix('_params')} {v:,}" for k, v in counts.items()
                    if k.startswith("method_")))
    version = method_version(method_entry.obj)
    # no setup in the key: training depends only on its datasets and ids, so setup B (trains as A) reuses A's LoRA
    train_inputs = {"method": method, "origin": method_entry.origin, "method_version": version,
                    "params": cfg.method, "seed": seed, "train": cfg.as_dict()["train"],
                    "sensitive": sensitive, **bkey, "datasets": names["train"],
                    "fingerprints": {n: dsets[n].fingerprint() for n in names["train"]},
                    "ids": config_hash([split_ids(n, s, k) for n in names["train"]
                                        for s, k in (("train", tr.max_train_images), ("val", tr.max_val_images))])}

    def save(folder, summary):
        save_lora(base.unet, folder)
        state = {k: v.contiguous() for k, v in method_obj.state_dict().items()}
        if state:
            save_file(state, str(folder / "method_modules.safetensors"))
        atomic_write_json(folder / "training.json", summary)
    train_dir = timed("train", lambda: stages.collective(cache, "train", train_inputs, procs,
                                                         lambda: trainer.fit(train_set, val_set), save))
    if (train_dir / "method_modules.safetensors").is_file():
        method_obj.load_state_dict(load_file(str(train_dir / "method_modules.safetensors")))
    _load_lora_into(base.unet, train_dir / "pytorch_lora_weights.safetensors")
    method_obj.eval()
    # the trained weights' content: it keys the release and the generator's MIA
    weights = {f.name: sha256_file(f) for f in sorted(train_dir.glob("*.safetensors"))}
    if not procs.is_main:  # features are the attacks' (main process only)
        trainer.backbone.remove()
        return {"dir": train_dir, "method": method_obj, "weights": weights}
    # PT and probe features: the empty prompt (headline) and the training prompt (second metric)
    null, ev, features = stages.null_text(base, device), cfg.eval, {}
    for n in names["evaluate"]:
        for split, k in (("gen", cfg.release.max_images_per_split), ("test", ev.max_test_images)):
            lat = latents(n, split, k)
            for prompt, text in (("null", null), ("train", None)):
                features[(n, split, prompt)] = timed("features", lambda: trainer.features(lat, ev.feature_timestep, text))
    trainer.backbone.remove()
    return {"dir": train_dir, "method": method_obj, "weights": weights, "spec": spec, "counts": counts,
            "method_version": version, "training": json.loads((train_dir / "training.json").read_text()),
            "features": features}


def _release(regime, seed, cfg, names, dsets, split_ids, base_name, base_path, base, bkey, device, cache, trained,
             timed, compile_unet=False, procs=SINGLE) -> dict:
    """img2img of the regime's real splits (and G) through the fused LoRA; returns the cached folders."""
    base_fresh = load_base(base_name, base_path, device=device, resolution=cfg.resolution)  # unfused copy
    pipe, hook = build_pipeline(base_fresh, trained["dir"], cfg.release, trained["method"], device, compile_unet)
    policy, rel_dirs = cfg.train.prompt_policy, {}
    for n in names["evaluate"]:
        ds = dsets[n]
        for split in dict.fromkeys((*REGIMES[regime], "gen")):
            ids = split_ids(n, split, cfg.release.max_images_per_split)
            rows = ds.records.iloc[ds.index_of(ids)]
            prompts = prompts_for(rows, policy, cfg.sensitive)
            # the trained weights' content keys the release (bkey's "weights" is the base model's: keep both)
            rin = {**bkey, "lora_weights": trained["weights"], "dataset": n, "split": split, "ids": ids,
                   "release": cfg.as_dict()["release"], "policy": policy, "seed": seed}

            def do_release():
                return release(pipe, ds.load_images(ids, base.resolution), prompts, cfg.release, seed, device,
                               desc=f"release {n}/{split}", procs=procs)
            def save(folder, imgs):
                save_released(folder, imgs, rows, prompts)
            rel_dirs[(n, split)] = timed("release", lambda: stages.collective(cache, "release", rin, procs,
                                                                              do_release, save))
    return rel_dirs, pipe, hook  # attacks query the released generator (MIA) and mechanism (inversion)


def _generator_access(cfg, names, base, device, pipe, latents, trained, split_ids) -> GeneratorAccess:
    """White-box access to the released UNet (fused LoRA + the method's release transform); members are the
    training images the LoRA saw, non-members the training datasets' Test images (identity-disjoint)."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(device).startswith("cuda"))

    @torch.no_grad()
    def eps(noisy, t, text):
        with autocast:
            return pipe.unet(noisy.to(device), t.to(device), text.to(device)).sample.float()
    @torch.no_grad()
    def eps_reference(noisy, t, text):  # the public base: the trained UNet with its LoRA switched off
        base.unet.disable_adapters()
        try:
            with autocast:
                return base.unet(noisy.to(device), t.to(device), text.to(device)).sample.float()
        finally:
            base.unet.enable_adapters()
    tr, ev = cfg.train, cfg.eval
    return GeneratorAccess(
        eps=eps, alphas_cumprod=pipe.scheduler.alphas_cumprod.float().cpu(),
        members=LatentSet.concat([latents(n, "train", tr.max_train_images) for n in names["train"]]),
        nonmembers=LatentSet.concat([latents(n, "test", ev.max_test_images) for n in names["train"]]),
        scaling_factor=float(base.vae.config.scaling_factor), null_text=stages.null_text(base, device).cpu(),
        device=str(device), eps_reference=eps_reference,
        # the trained stage (method, params, seed, data, base, device type) and what shapes the released UNet
        # (the stage's name carries its datasets and member ids)
        key={"trained": trained["dir"].name, "release": cfg.as_dict()["release"], "weights": trained["weights"],
             "nonmembers": config_hash([split_ids(n, "test", ev.max_test_images) for n in names["train"]])})


def _attack(regime, seed, cfg, suite, names, dsets, split_ids, base, device, cache, trained, rel_dirs, timed,
            log, pipe, latents) -> list[dict]:
    """One DataRelease per evaluated dataset, and the attack suite over it."""
    ev, method_obj, spec = cfg.eval, trained["method"], trained["spec"]
    generator = _generator_access(cfg, names, base, device, pipe, latents, trained, split_ids)
    policy, sensitive = cfg.train.prompt_policy, cfg.sensitive

    def release_fn(images, rows):
        return release(pipe, images, prompts_for(rows, policy, sensitive), cfg.release, seed, device,
                       desc="release (attacker's images)")
    actx = AttackContext(cfg=ev, seed=seed, device=device, cache=cache, log=log)
    adversary = None
    if method_obj.has_adversary():
        adversary = lambda f: method_obj.adversary_logits(  # noqa: E731
            list(torch.split(f.to(device), spec.feature_dims, dim=1)))
    evaluations = []
    for n in names["evaluate"]:
        ds = dsets[n]

        def real(split, k):
            ids = split_ids(n, split, k)
            return RealSplit(ds.load_images(ids, base.resolution),
                             ds.records.iloc[ds.index_of(ids)].reset_index(drop=True), ids)
        real_on = [real(s, cfg.release.max_images_per_split) for s in REGIMES[regime]]
        real_ids = sum((r.ids for r in real_on), [])
        rel = [load_released(rel_dirs[(n, s)]) for s in REGIMES[regime]]
        gen_rel = load_released(rel_dirs[(n, "gen")])
        release_obj = DataRelease(
            dataset=n, sensitive=cfg.sensitive, utility=spec.utility, n_classes=spec.n_classes,
            released=RealSplit(np.concatenate([r[0] for r in rel]), pd.concat([r[1] for r in rel], ignore_index=True),
                               real_ids),
            released_gen=RealSplit(gen_rel[0], gen_rel[1], list(gen_rel[1]["source_image_id"])),
            real={"train_on": RealSplit.concat(real_on),
                  "gen": real("gen", cfg.release.max_images_per_split),
                  "gen_val": real("gen_val", ev.max_gen_val_images), "test": real("test", ev.max_test_images)},
            lora_dir=trained["dir"],
            features={(s, p): f for (dn, s, p), f in trained["features"].items() if dn == n},
            adversary=adversary,
            fingerprint=config_hash([rel_dirs[(n, s)].name for s in REGIMES[regime]]),
            generator=generator, release_fn=release_fn,
            auxiliary=_auxiliary(ds, ev.inversion_aux_images, base.resolution),
            identity_gallery=identity_gallery(ds, real_ids, split_ids(n, "test", ev.linkage_distractors),
                                               base.resolution))
        evaluation = stages.run_suite(suite, actx, release_obj, timed)
        evaluations.append(evaluation)
    return evaluations


def _auxiliary(ds, n: int, size: int) -> RealSplit | None:
    """The attacker's own population where the dataset can draw one (SynthFaces: same domain, new seed)."""
    if not hasattr(ds, "auxiliary"):
        return None
    images, labels = ds.auxiliary(n, size)
    return RealSplit(images, labels, list(labels["image_id"]))


def _load_lora_into(unet, path: Path) -> None:
    """Copy saved (diffusers-format) LoRA weights into the UNet's live peft adapters."""
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft import set_peft_model_state_dict

    sd = load_file(str(path))
    sd = {k.removeprefix("unet."): v for k, v in sd.items()}
    set_peft_model_state_dict(unet, convert_unet_state_dict_to_peft(sd), adapter_name="default")
