"""The cached stages of a run. Each takes what it needs and returns plain tensors/arrays."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from decobench.data.labels import CLASSES
from decobench.evaluation.classifier import accuracy, resnet18, to_tensor, train_classifier
from decobench.models.prompts import encode_prompts, prompts_for
from decobench.run.train import LatentSet

ATTRS = ("race", "gender", "age")


def subset_ids(ids: list[str], k: int | None) -> list[str]:
    """A fixed subset (seed 0, independent of the run seed, so stages are shared across seeds)."""
    if k is None or len(ids) <= k:
        return list(ids)
    keep = np.sort(np.random.default_rng(0).permutation(len(ids))[:k])
    return [ids[i] for i in keep]


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, device, batch: int = 128):
    means, stds = [], []
    for i in tqdm(range(0, len(images), batch), desc="encode latents", unit="batch", leave=False):
        x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
        post = vae.encode(x.to(vae.dtype)).latent_dist
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def latent_set(cache, base, ds, split: str, ids: list[str], policy: str, device) -> LatentSet:
    """VAE posterior + text states of a split, computed once per (dataset, split, base, policy)."""
    inputs = {"dataset": ds.name, "fingerprint": ds.fingerprint(), "split": split, "ids": ids,
              "base": base.name, "base_path": str(base.path), "resolution": base.resolution, "policy": policy}
    with cache.stage("latents", inputs) as (folder, cached):
        if not cached:
            rows = ds.records.iloc[ds.index_of(ids)]
            mean, std = encode_latents(base.vae, ds.load_images(ids, base.resolution), device)
            text = encode_prompts(base.tokenizer, base.text_encoder, prompts_for(rows, policy), device)
            race = torch.tensor(rows["race"].to_numpy(), dtype=torch.long)
            torch.save({"mean": mean.half(), "std": std.half(), "text": text.cpu().half(), "race": race},
                       folder / "latents.pt")
    d = torch.load(cache.key("latents", inputs) / "latents.pt")
    return LatentSet(d["mean"], d["std"], d["text"], d["race"])


def labels_of(rows) -> dict[str, torch.Tensor]:
    return {a: torch.tensor(rows[a].to_numpy(), dtype=torch.long) for a in ATTRS}


def train_attribute_classifiers(cache, tag: dict, train_images: np.ndarray, train_rows, val_images, val_rows,
                                test_images, test_rows, cfg, seed: int, device, desc: str):
    """Three ResNet18s (race, gender, age) trained on one image set; Test accuracy of each (cached)."""
    inputs = {**tag, "classifier": cfg.as_dict(), "seed": seed, "n_train": len(train_images),
              "n_test": len(test_images)}
    with cache.stage("classifiers", inputs) as (folder, cached):
        if not cached:
            xs = {k: to_tensor(v, cfg.image_size) for k, v in
                  (("train", train_images), ("val", val_images), ("test", test_images))}
            ys = {"train": labels_of(train_rows), "val": labels_of(val_rows), "test": labels_of(test_rows)}
            state, acc, epochs = {}, {}, {}
            for a in ATTRS:
                model, hist = train_classifier(xs["train"], ys["train"][a], xs["val"], ys["val"][a],
                                               len(CLASSES[a]), cfg, seed=seed, desc=f"{desc} {a}", device=device)
                acc[a] = accuracy(model, xs["test"].to(device), ys["test"][a].to(device))
                epochs[a] = len(hist)
                state[a] = {k: v.cpu() for k, v in model.state_dict().items()}
            torch.save({"state": state, "accuracy": acc, "epochs": epochs}, folder / "classifiers.pt")
    d = torch.load(cache.key("classifiers", inputs) / "classifiers.pt")
    models = {}
    for a in ATTRS:
        m = resnet18(len(CLASSES[a]))
        m.load_state_dict(d["state"][a])
        models[a] = m.eval()
    return d["accuracy"], d["epochs"], models
