"""``decobench run --track model``: the method trains a face encoder with utility heads, which is released.

dataset -> splits -> images of Tr and V (the training datasets') -> the game trainer on an
:class:`~decobench.run.encoder_backbone.EncoderBackbone` (cached by content hash like the data track's
LoRA) -> a :class:`~decobench.attacks.base.ModelRelease` per evaluated dataset (the encoder and heads as a
black box, real G / G-val / Test, the training images as members and Test as non-members, the training
recipe for reference models, the attacker's auxiliary population, a face gallery for Test people) -> the
model-track attack suite -> result.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from decobench.attacks.base import AttackContext, ModelRelease, RealSplit, ReleasedModel
from decobench.evaluation.identification import identity_gallery
from decobench.io import atomic_write_json
from decobench.methods.base import MethodSpec
from decobench.models.encoder import to_input
from decobench.run import stages
from decobench.run.config import ConfigError, config_hash
from decobench.run.encoder_backbone import EncoderBackbone, ImageSet
from decobench.run.train import Trainer


def image_set(split: RealSplit) -> ImageSet:
    return ImageSet(torch.from_numpy(np.ascontiguousarray(split.images)), stages.labels_of(split.labels))


def _extras(method_cls, dsets: dict, split: RealSplit, size: int, aux_n: int | None) -> dict[str, torch.Tensor]:
    """The labels a method ``needs`` beyond the attributes (SynthFaces has them): ``landmarks`` [N, 10] in [-1, 1]
    of the image (x, y per point), ``pose`` [N, 3] yaw, pitch, roll in radians; ``face`` = 1."""
    out = {"face": torch.ones(len(split.ids), dtype=torch.long)}
    if "landmarks" in method_cls.needs:
        pts = np.zeros((len(split.ids), 5, 2), np.float32)
        done = np.zeros(len(split.ids), bool)
        for name, ds in dsets.items():
            rows = [k for k, i in enumerate(split.ids) if i.split("/", 1)[0] in (ds.name, f"{ds.name}-aux")]
            if rows and not hasattr(ds, "landmarks"):
                raise ConfigError(f"method {method_cls.__name__} needs 5-point landmarks; dataset {name} has none "
                                  f"(the SynthFaces datasets ship them; a real dataset's loader must provide "
                                  f"landmarks(image_ids, size))")
            if rows:
                pts[rows] = ds.landmarks([split.ids[k] for k in rows], size, aux_n)
                done[rows] = True
        if not done.all():
            raise ConfigError(f"no dataset of this run ({', '.join(dsets)}) owns image {split.ids[int(np.argmin(done))]}"
                              f"; its landmarks are unknown")
        out["landmarks"] = torch.from_numpy((pts + 0.5) / size * 2 - 1).reshape(len(pts), 10)
    if "pose" in method_cls.needs:
        cols = ["yaw_deg", "pitch_deg", "roll_deg"]
        if not set(cols) <= set(split.labels.columns):
            raise ConfigError(f"method {method_cls.__name__} needs head pose labels ({', '.join(cols)}); the "
                              f"dataset has none (the SynthFaces datasets do)")
        out["pose"] = torch.from_numpy(np.deg2rad(split.labels[cols].to_numpy(np.float32)))
    return out


def code_inputs(params) -> dict:
    """What else decides a trained encoder beside the method's version: this module (training sets, non-face
    seeds, label scaling), the encoder's architecture, the renderer (landmarks, non-face patches) and the
    perceptual network's weights when the method uses one."""
    from decobench.data.synthfaces import render
    from decobench.io import sha256_file
    from decobench.models import encoder

    out = {Path(m.__file__).name: sha256_file(m.__file__) for m in (encoder, render, sys.modules[__name__])}
    spec = getattr(params, "perceptual", None)
    if spec:
        from decobench.models.perceptual import DIR

        path = Path(spec.removeprefix("torchscript:")).expanduser() if spec.startswith("torchscript:") else \
            DIR / "model.safetensors"
        out["perceptual"] = sha256_file(path) if path.is_file() else "missing"
    return out


def _blank(v: torch.Tensor, n: int) -> torch.Tensor:
    """Labels of ``n`` non-face patches: -1 (categorical: no age, gender...) or 0 (continuous, masked)."""
    shape = (n, *v.shape[1:])
    return torch.zeros(shape, dtype=v.dtype) if v.is_floating_point() else torch.full(shape, -1, dtype=v.dtype)


def training_set(method_cls, params, dsets: dict, split: RealSplit, size: int, seed: int,
                 aux_n: int | None = None) -> ImageSet:
    """A split's images and labels as the method trains on them: with the labels it ``needs`` and, for a
    detection task, ``method_cls.nonfaces(...)`` non-face patches (``face`` 0, -1 or 0 for every other label)."""
    data = image_set(split)
    n_neg = method_cls.nonfaces(params, len(data))
    if not method_cls.needs and not n_neg:
        return data
    data.labels.update(_extras(method_cls, dsets, split, size, aux_n))
    if not n_neg:
        return data
    ds = next((d for d in dsets.values() if hasattr(d, "nonface_patches")), None)
    if ds is None:
        raise ConfigError(f"method {method_cls.__name__} needs non-face patches; none of the datasets "
                          f"({', '.join(dsets)}) can make them (the SynthFaces datasets can)")
    neg = ImageSet(torch.from_numpy(ds.nonface_patches(n_neg, seed, size)),
                   {k: _blank(v, n_neg) for k, v in data.labels.items()})
    neg.labels["face"].zero_()
    return ImageSet.concat([data, neg])


def real_split(ds, ids: list[str], size: int) -> RealSplit:
    return RealSplit(ds.load_images(ids, size), ds.records.iloc[ds.index_of(ids)].reset_index(drop=True), ids)


def released(backbone: EncoderBackbone, batch: int = 256) -> ReleasedModel:
    """The trained encoder and heads as attacks query them: uint8 images in, features / logits out."""
    @torch.no_grad()
    def encode(images):
        backbone.train(False)
        return torch.cat([backbone.module["encoder"](to_input(np.ascontiguousarray(images[i:i + batch]))
                                                     .to(backbone.device))[1].cpu()
                          for i in range(0, len(images), batch)])

    @torch.no_grad()
    def heads(images):
        feats = encode(images).to(backbone.device)
        return {k: v.cpu() for k, v in backbone.head_logits(feats).items()}
    return ReleasedModel(encode=encode, heads=heads)


def train_encoder(method_cls, params, spec: MethodSpec, cfg, train: ImageSet, val: ImageSet, device, seed, log,
                  widths) -> tuple[Trainer, dict]:
    method = method_cls(spec, params)
    trainer = Trainer(EncoderBackbone(spec, method, device, seed, widths), method, cfg.train, sensitive=cfg.sensitive,
                      device=device, seed=seed, log=log)
    return trainer, trainer.fit(train, val)


def run_model_track(method, method_entry, params, version, cfg, seed, suite, names, dsets, split_ids, device, cache,
                    size: int, widths, log) -> tuple[dict, dict, dict]:
    """Train (or load) the released encoder and run the suite; returns (evaluations, training, counts)."""
    tr, ev = cfg.train, cfg.eval
    seconds: dict[str, float] = {}

    def timed(name, fn):
        t = time.time()
        r = fn()
        seconds[name] = round(seconds.get(name, 0.0) + time.time() - t, 2)
        return r
    ds0 = dsets[names["train"][0]]
    spec = MethodSpec([widths[-1]], stages.n_classes(ds0.records), cfg.sensitive,
                      tuple(a for a in stages.ATTRS if a != cfg.sensitive), extra={"source_shape": (3, size, size)})
    train_splits = {n: real_split(dsets[n], split_ids(n, "train", tr.max_train_images), size) for n in names["train"]}
    val_splits = {n: real_split(dsets[n], split_ids(n, "val", tr.max_val_images), size) for n in names["train"]}
    members = RealSplit.concat(list(train_splits.values()))
    aux_n = max(len(members.ids), ev.mia_samples) + ev.inversion_aux_images + 1000  # the attacker's population

    def data_of(split, nonface_seed):
        return training_set(method_entry.obj, params, dsets, split, size, nonface_seed, aux_n)
    train = ImageSet.concat([data_of(s, 1_000 + 10 * seed + k) for k, s in enumerate(train_splits.values())])
    val = ImageSet.concat([data_of(s, 2_000 + 10 * seed + k) for k, s in enumerate(val_splits.values())])
    inputs = {"track": "model", "method": method, "method_version": version, "params": cfg.method, "seed": seed,
              "train": cfg.as_dict()["train"], "sensitive": cfg.sensitive, "size": size, "widths": list(widths),
              "fingerprints": {n: dsets[n].fingerprint() for n in names["train"]},
              "ids": config_hash([s.ids for s in (*train_splits.values(), *val_splits.values())]), "device": str(device),
              "code": code_inputs(params)}
    trainer = None

    def fit():
        nonlocal trainer
        with cache.stage("train_model", inputs) as (folder, cached):
            if not cached:
                trainer, summary = train_encoder(method_entry.obj, params, spec, cfg, train, val, device, seed, log,
                                                 widths)
                save_file({k: v.contiguous() for k, v in trainer.backbone.module.state_dict().items()},
                          str(folder / "encoder.safetensors"))
                method_state = {k: v.contiguous() for k, v in trainer.method.state_dict().items()}
                if method_state:
                    save_file(method_state, str(folder / "method_modules.safetensors"))
                atomic_write_json(folder / "training.json", summary)
        return cache.key("train_model", inputs)
    folder = timed("train", fit)
    if trainer is None:  # from the cache
        method_obj = method_entry.obj(spec, params)
        trainer = Trainer(EncoderBackbone(spec, method_obj, device, seed, widths), method_obj, tr,
                          sensitive=cfg.sensitive, device=device, seed=seed, log=log)
        trainer.backbone.module.load_state_dict(load_file(str(folder / "encoder.safetensors")))
        if (folder / "method_modules.safetensors").is_file():
            trainer.method.load_state_dict(load_file(str(folder / "method_modules.safetensors")))
    trainer.method.eval()
    training = json.loads((folder / "training.json").read_text())
    model = released(trainer.backbone)
    val_set = val

    def recipe(split: RealSplit, ref_seed: int) -> ReleasedModel:  # a reference model: the same recipe, other data
        t, _ = train_encoder(method_entry.obj, params, spec, cfg, data_of(split, 3_000 + ref_seed), val_set, device,
                             ref_seed, lambda *a: None, widths)
        return released(t.backbone)

    actx = AttackContext(cfg=ev, seed=seed, device=device, cache=cache, log=log)
    evaluations = []
    for n in names["evaluate"]:
        ds = dsets[n]
        test = real_split(ds, split_ids(n, "test", ev.max_test_images), size)
        aux = None
        if hasattr(ds, "auxiliary"):
            images, labels = ds.auxiliary(aux_n, size)
            aux = RealSplit(images, labels.reset_index(drop=True), list(labels["image_id"]))
        release = ModelRelease(
            dataset=n, sensitive=cfg.sensitive, utility=spec.utility, n_classes=spec.n_classes, model=model,
            real={"gen": real_split(ds, split_ids(n, "gen", cfg.release.max_images_per_split), size),
                  "gen_val": real_split(ds, split_ids(n, "gen_val", ev.max_gen_val_images), size), "test": test},
            members=members, nonmembers=test, recipe=recipe, train_size=len(members.ids), auxiliary=aux,
            identity_gallery=identity_gallery(ds, test.ids, split_ids(n, "gen", ev.linkage_distractors), size),
            fingerprint=folder.name, dp=training.get("dp"))
        evaluation = stages.run_suite(suite, actx, release, timed)
        if hasattr(trainer.method, "task_metrics"):  # a method's own released task heads (DPLH) on Test
            tdata = training_set(method_entry.obj, params, {n: ds}, test, size, 4_000 + seed, aux_n)
            feats = model.encode(tdata.images.numpy())  # task_metrics moves them to its heads' device
            evaluation["metrics"].update(timed("task_metrics", lambda: trainer.method.task_metrics(
                feats, tdata.labels, ev.bootstrap, seed)))
        evaluations.append(evaluation)
    return evaluations, training, {**trainer.counts, "seconds": seconds}
