"""``heads``: utility of a released model: its own task heads scored on real Test (model track).

Each utility attribute's released head predicts Test images (people the model never saw); accuracy with
its chance, majority rate, balanced accuracy and bootstrap CI, higher is better. The data track's
counterpart is CLS (classifiers trained on the released images).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from decobench.attacks.base import Attack, AttackResult, CalibrationCase, RealSplit, ReleasedModel, accuracy_case
from decobench.attacks.metrics import HIGHER, accuracy_metric
from decobench.registry import attacks


def head_accuracy(model: ReleasedModel, test: RealSplit, tasks, n_classes: dict[str, int], resamples: int,
                  seed: int) -> dict[str, dict]:
    logits = model.heads(test.images)
    out = {}
    for t in tasks:
        if t not in logits:
            continue
        y = test.labels[t].to_numpy()
        out[f"utility_heads_{t}"] = accuracy_metric(y, logits[t].argmax(1).numpy(), n_classes[t], HIGHER, resamples,
                                                    seed, note="the released model's own head on real Test")
    return out


@attacks.register("heads")
class ReleasedHeads(Attack):
    """Utility of a released model: its own task heads on real Test."""

    accepts = ("model",)
    version = "1"

    def run(self, release) -> AttackResult:
        return AttackResult(head_accuracy(release.model, release.real["test"], release.utility, release.n_classes,
                                          self.ctx.cfg.bootstrap, self.ctx.seed))

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        """Planted: heads that read the label from a pixel must score above chance and majority; absent: heads
        that ignore the image must not."""
        rng = np.random.default_rng(seed)
        n, k = 600, 4
        y = rng.integers(0, k, n)
        images = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
        images[:, 0, 0, 0] = y * 60 + rng.integers(0, 20, n)
        test = RealSplit(images, pd.DataFrame({"label": y}), [str(i) for i in range(n)])

        def reads(x):
            v = torch.as_tensor(x[:, 0, 0, 0].astype(np.int64) // 60).clamp(max=k - 1)
            return {"label": torch.nn.functional.one_hot(v, k).float()}

        def ignores(x):
            return {"label": torch.randn(len(x), k, generator=torch.Generator().manual_seed(seed))}
        out = []
        for case, heads in (("planted", reads), ("absent", ignores)):
            m = head_accuracy(ReleasedModel(lambda x: torch.zeros(len(x), 1), heads), test, ["label"], {"label": k},
                              500, seed)["utility_heads_label"]
            out.append(accuracy_case("heads", case, m))
        return out
