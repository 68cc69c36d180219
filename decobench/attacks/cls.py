"""``cls``: DECO-Bench's attribute classifiers (CLS), and Baseline (Real) beside them.

One ResNet18 from scratch per attribute (sensitive and utility), trained on the released images with
their sources' labels, early-stopped on real G-val, scored on real Test. The same classifiers trained
on the real images of the regime's splits are Baseline (Real), reported as reference figures. Privacy
CLS is the sensitive attribute's accuracy (lower is better); Utility CLS the others' (higher is better).
"""

from __future__ import annotations

import numpy as np
import torch

from decobench.attacks.base import Attack, AttackResult, CalibrationCase, accuracy_case
from decobench.attacks.metrics import HIGHER, LOWER, accuracy_metric
from decobench.evaluation.classifier import ClassifierConfig, predict, to_tensor, train_classifier
from decobench.registry import attacks


def _train_and_predict(train, val, test, attrs, n_classes, cfg, seed, device, desc):
    """Per attribute: train on ``train``, select on ``val``, predict ``test``; returns preds, epochs."""
    xs = {k: to_tensor(v.images, cfg.image_size) for k, v in (("train", train), ("val", val), ("test", test))}
    preds, epochs = {}, {}
    for a in attrs:
        y = {k: torch.tensor(s.labels[a].to_numpy()) for k, s in (("train", train), ("val", val))}
        model, hist = train_classifier(xs["train"], y["train"], xs["val"], y["val"], n_classes[a], cfg,
                                       seed=seed, desc=f"{desc} {a}", device=device)
        preds[a] = predict(model, xs["test"].to(device)).numpy()
        epochs[a] = len(hist)
    return preds, epochs


def cached_predictions(ctx, key: dict, compute):
    """Run ``compute()`` -> (preds, epochs) once per key in the stage cache (or always, without one)."""
    if ctx.cache is None:
        return compute()
    with ctx.cache.stage("classifiers", key) as (folder, cached):
        if not cached:
            preds, epochs = compute()
            torch.save({"preds": preds, "epochs": epochs}, folder / "predictions.pt")
    d = torch.load(ctx.cache.key("classifiers", key) / "predictions.pt", weights_only=False)
    return d["preds"], d["epochs"]


@attacks.register("cls")
class AttributeClassifiers(Attack):
    """CLS: ResNet18s trained on the released images, early-stopped on real G-val, scored on real Test."""

    accepts = ("data",)
    version = "2"

    def _metrics(self, preds, test, release) -> dict:
        cfg, out = self.ctx.cfg, {}
        for a in (release.sensitive, *release.utility):
            name = f"{'privacy' if a == release.sensitive else 'utility'}_cls_{a}"
            out[name] = accuracy_metric(test.labels[a].to_numpy(), preds[a], release.n_classes[a],
                                        LOWER if a == release.sensitive else HIGHER, cfg.bootstrap, self.ctx.seed)
        return out

    def cache_keys(self, release) -> tuple[dict, dict]:
        """What the Baseline (Real) and the released classifiers depend on: every id, config, seed, device."""
        ccfg = self.ctx.cfg.classifier
        val, test = release.real["gen_val"], release.real["test"]
        common = {"attack": "cls", "version": self.version, "classifier": ccfg.as_dict(), "seed": self.ctx.seed,
                  "device": str(self.ctx.device), "attrs": (release.sensitive, *release.utility),
                  "val_ids": val.ids, "test_ids": test.ids}
        return ({**common, "train": "real", "dataset": release.dataset, "train_ids": release.real["train_on"].ids},
                {**common, "train": "released", "released": release.fingerprint})

    def run(self, release) -> AttackResult:
        ccfg, seed, dev = self.ctx.cfg.classifier, self.ctx.seed, self.ctx.device
        attrs = (release.sensitive, *release.utility)
        val, test = release.real["gen_val"], release.real["test"]
        real_key, released_key = self.cache_keys(release)
        real_preds, real_epochs = cached_predictions(
            self.ctx, real_key, lambda: _train_and_predict(release.real["train_on"], val, test, attrs,
                                                           release.n_classes, ccfg, seed, dev,
                                                           f"Baseline (Real) {release.dataset}"))
        rel_preds, rel_epochs = cached_predictions(
            self.ctx, released_key, lambda: _train_and_predict(release.released, val, test, attrs, release.n_classes,
                                                               ccfg, seed, dev, f"CLS {release.dataset}"))
        return AttackResult(self._metrics(rel_preds, test, release),
                            reference={"baseline_real": self._metrics(real_preds, test, release)},
                            info={"classifier_epochs": rel_epochs, "baseline_real_classifier_epochs": real_epochs,
                                  "max_epochs": ccfg.max_epochs, "released_images": len(release.released.images),
                                  "test_images": len(test.images)})

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        """Planted: a colour patch in the image encodes the label; absent: the same images, labels shuffled."""
        from decobench.attacks.base import RealSplit
        import pandas as pd

        rng = np.random.default_rng(seed)
        k, size = 4, 16
        # lr 0.01: at 0.05 SGD diverged (V loss in the hundreds) and missed the patch on one thread (27.8 %)
        cfg = ClassifierConfig(image_size=size, max_epochs=6, patience=2, batch_size=64, lr=0.01)
        out = []
        for case in ("planted", "absent"):
            splits = {}
            for name, n in (("train", 600), ("val", 200), ("test", 400)):
                y = rng.integers(0, k, n)
                img = rng.integers(60, 196, (n, size, size, 3)).astype(np.uint8)
                img[:, :6, :6, :] = (y * 60 + 10)[:, None, None, None].astype(np.uint8)  # the label, drawn in
                if case == "absent":
                    y = rng.permutation(y)  # labels no longer tied to the pixels
                splits[name] = RealSplit(img, pd.DataFrame({"label": y}), [str(i) for i in range(n)])
            preds, _ = _train_and_predict(splits["train"], splits["val"], splits["test"], ("label",),
                                          {"label": k}, cfg, seed, "cpu", f"calibrate cls {case}")
            m = accuracy_metric(splits["test"].labels["label"].to_numpy(), preds["label"], k, LOWER, 500, seed)
            out.append(accuracy_case("cls", case, m))
        return out
