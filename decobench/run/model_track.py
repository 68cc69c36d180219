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
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from decobench.attacks.base import AttackContext, ModelRelease, RealSplit, ReleasedModel
from decobench.evaluation.identification import identity_gallery
from decobench.io import atomic_write_json
from decobench.methods.base import MethodSpec
from decobench.models.encoder import to_input
from decobench.run import stages
from decobench.run.config import config_hash
from decobench.run.encoder_backbone import EncoderBackbone, ImageSet
from decobench.run.train import Trainer


def image_set(split: RealSplit) -> ImageSet:
    return ImageSet(torch.from_numpy(np.ascontiguousarray(split.images)), stages.labels_of(split.labels))


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
    train = ImageSet.concat([image_set(s) for s in train_splits.values()])
    val = ImageSet.concat([image_set(s) for s in val_splits.values()])
    inputs = {"track": "model", "method": method, "method_version": version, "params": cfg.method, "seed": seed,
              "train": cfg.as_dict()["train"], "sensitive": cfg.sensitive, "size": size, "widths": list(widths),
              "fingerprints": {n: dsets[n].fingerprint() for n in names["train"]},
              "ids": config_hash([s.ids for s in (*train_splits.values(), *val_splits.values())]), "device": str(device)}
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
        t, _ = train_encoder(method_entry.obj, params, spec, cfg, image_set(split), val_set, device, ref_seed,
                             lambda *a: None, widths)
        return released(t.backbone)

    actx = AttackContext(cfg=ev, seed=seed, device=device, cache=cache, log=log)
    members = RealSplit.concat(list(train_splits.values()))
    evaluations = []
    for n in names["evaluate"]:
        ds = dsets[n]
        test = real_split(ds, split_ids(n, "test", ev.max_test_images), size)
        aux = None
        if hasattr(ds, "auxiliary"):
            images, labels = ds.auxiliary(max(len(members.ids), ev.mia_samples) + ev.inversion_aux_images + 1000, size)
            aux = RealSplit(images, labels.reset_index(drop=True), list(labels["image_id"]))
        release = ModelRelease(
            dataset=n, sensitive=cfg.sensitive, utility=spec.utility, n_classes=spec.n_classes, model=model,
            real={"gen": real_split(ds, split_ids(n, "gen", cfg.release.max_images_per_split), size),
                  "gen_val": real_split(ds, split_ids(n, "gen_val", ev.max_gen_val_images), size), "test": test},
            members=members, nonmembers=test, recipe=recipe, train_size=len(members.ids), auxiliary=aux,
            identity_gallery=identity_gallery(ds, test.ids, split_ids(n, "gen", ev.linkage_distractors), size),
            fingerprint=folder.name, dp=training.get("dp"))
        evaluation = {"dataset": n, "metrics": {}, "reference": {}, "attack_info": {}}
        for entry in suite:
            res = timed(f"attack_{entry.name}", lambda: entry.obj(actx).run(release))
            evaluation["metrics"].update(res.metrics)
            for k, v in res.reference.items():
                evaluation["reference"].setdefault(k, {}).update(v)
            evaluation["attack_info"][entry.name] = res.info
        evaluations.append(evaluation)
    return evaluations, training, {**trainer.counts, "seconds": seconds}
