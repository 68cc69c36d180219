"""Cached data stages of a run: split ids, VAE latents + text states + labels of a split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from decobench.data.labels import CLASSES
from decobench.models.prompts import encode_prompts, prompts_for
from decobench.run.train import LatentSet

ATTRS = ("race", "gender", "age")  # the attributes CLS scores (sensitive + utility)
# labels a method may see (whichever the dataset has): categorical as long, continuous as float
CATEGORICAL = ("race", "gender", "age", "identity", "expression", "profile")
CONTINUOUS = ("yaw_deg", "pitch_deg", "roll_deg")


def collective(cache, stage: str, inputs: dict, procs, compute, save) -> Path:
    """A cached stage that every process computes together (training, release): on one process the cache's
    locked stage; on several, all compute when it is not cached (their collectives cannot wait on a lock)
    and the main process saves it."""
    final = cache.key(stage, inputs)
    if procs.world == 1:
        with cache.stage(stage, inputs) as (folder, cached):
            if not cached:
                save(folder, compute())
        return final
    if procs.any(not cache.done(final)):
        result = compute()
        if procs.is_main:
            with cache.stage(stage, inputs) as (folder, cached):
                if not cached:
                    save(folder, result)
    procs.barrier()
    return final


def n_classes(records) -> dict[str, int]:
    out = {a: len(c) for a, c in CLASSES.items()}
    for a in ("expression", "profile"):
        if a in records:
            out[a] = int(records[a].max()) + 1
    return out


def subset_ids(ids: list[str], k: int | None) -> list[str]:
    """A fixed subset (seed 0, independent of the run seed, so stages are shared across seeds)."""
    if k is None or len(ids) <= k:
        return list(ids)
    keep = np.sort(np.random.default_rng(0).permutation(len(ids))[:k])
    return [ids[i] for i in keep]


def labels_of(rows) -> dict[str, torch.Tensor]:
    out = {a: torch.tensor(rows[a].to_numpy(), dtype=torch.long) for a in CATEGORICAL
           if a in rows and (rows[a] >= 0).all()}
    out.update({a: torch.tensor(rows[a].to_numpy(), dtype=torch.float32) for a in CONTINUOUS if a in rows})
    return out


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, device, batch: int = 128):
    means, stds = [], []
    for i in tqdm(range(0, len(images), batch), desc="encode latents", unit="batch", leave=False):
        x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
        post = vae.encode(x.to(vae.dtype)).latent_dist
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def base_key(base, device) -> dict:
    """What a stage computed with the base model depends on: its weights' content, size, device type (each
    process of a multi-GPU run is on its own cuda:k and shares the stages)."""
    return {"base": base.name, "weights": base.weights_digest(), "resolution": base.resolution,
            "device": torch.device(device).type,
            "precision": "bf16-autocast, bf16 release weights" if str(device).startswith("cuda") else "fp32"}


def latent_set(cache, base, ds, split: str, ids: list[str], policy: str, sensitive: str, device) -> LatentSet:
    """VAE posterior + text states + labels of a split, once per (data, ids, base weights, prompt policy)."""
    inputs = {"dataset": ds.name, "fingerprint": ds.fingerprint(), "split": split, "ids": ids, **base_key(base, device),
              "policy": policy, "sensitive": sensitive if policy == "without_sensitive" else None, "format": 2}
    with cache.stage("latents", inputs) as (folder, cached):
        if not cached:
            rows = ds.records.iloc[ds.index_of(ids)]
            mean, std = encode_latents(base.vae, ds.load_images(ids, base.resolution), device)
            text = encode_prompts(base.tokenizer, base.text_encoder, prompts_for(rows, policy, sensitive), device)
            torch.save({"mean": mean.half(), "std": std.half(), "text": text.cpu().half(), "labels": labels_of(rows)},
                       folder / "latents.pt")
    d = torch.load(cache.key("latents", inputs) / "latents.pt")
    return LatentSet(d["mean"], d["std"], d["text"], d["labels"])


def null_text(base, device) -> torch.Tensor:
    """Text states of the empty prompt, [1, tokens, dim]."""
    return encode_prompts(base.tokenizer, base.text_encoder, [""], device).float()


def run_suite(suite, actx, release, timed) -> dict:
    """Every attack of ``suite`` on one release: the evaluation block of result.json (metrics, reference
    figures, each attack's info), each attack's time under ``attack_<name>``."""
    evaluation = {"dataset": release.dataset, "metrics": {}, "reference": {}, "attack_info": {}}
    for entry in suite:
        res = timed(f"attack_{entry.name}", lambda: entry.obj(actx).run(release))
        evaluation["metrics"].update(res.metrics)
        for k, v in res.reference.items():
            evaluation["reference"].setdefault(k, {}).update(v)
        evaluation["attack_info"][entry.name] = res.info
    return evaluation
