"""DPLH (Zhang et al., Front. Neurorobot. 2020): HyperFace-style multi-task learning under DP-SGD on every
trainable parameter, with the task losses weighted by learned homoscedastic uncertainty.

Model track only. The released model is the track's face encoder with its utility heads (age, gender) and
DPLH's own heads on the same features: face / non-face detection (SynthFaces' non-face patches, 1 logit),
5 landmarks (10 coordinates in [-1, 1] of the image) and pose (yaw, pitch, roll in radians). Losses (paper
eq. 1, 2, 4, 5): BCE for detection over every example; landmark and pose MSE over faces only; the utility
CE over faces only (the backbone's base loss). No visibility task: SynthFaces has no visibility labels.

Weighting (eq. 7, ``weighting=uncertainty``): L = Σ_i 0.5·exp(−s_i)·L_i + s_i with s_i = log σ_i² learned
per task (init 0, inside the private model: clipped and noised like every weight). The base loss's
components (age CE, gender CE) are weighted the same way: the method's generator term adds
(0.5·exp(−s_c) − 1/n)·L_c + s_c to the trainer's unweighted mean of the n components.

DP: ``dp_backbone`` — the encoder, the utility heads, DPLH's heads and the s_i all train under DP-SGD with
Poisson sampling over faces and non-face patches together (N counts both). The paper's budgets are total
ε 0.7, 5, 10 at δ 1e-5 (``--set method.target_epsilon=…``; the paper's "per epoch" cannot be meant
literally, see README), S = 0.5, plain SGD at 1.5e-4 (``--set method.optimizer=sgd --set model.lr=1.5e-4``;
AdamW at the model track's rate by default here: the same ε).
No non-private pretraining on the private data (the paper initialises from a detector trained on the same
regions, which would void the guarantee).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from decobench.attacks.metrics import HIGHER, LOWER, accuracy_metric, bootstrap_ci
from decobench.methods.base import DecouplingMethod, DPParams, OptimGroup
from decobench.registry import methods

TASKS = {"detection": 1, "landmarks": 10, "pose": 3}


class DPLHParams(DPParams):
    max_grad_norm: float = Field(0.5, gt=0, description="per-example clipping norm S (paper: 0.5)")
    faces_per_nonface: float = Field(3.0, gt=0, le=100, description="training faces per non-face patch (the paper "
                                     "gives no ratio)")
    weighting: Literal["uncertainty", "equal"] = Field("uncertainty", description="uncertainty: learned s_i = log "
                                                       "sigma_i^2 (paper eq. 7); equal: detection, landmarks and "
                                                       "pose weight 1 beside the trainer's mean utility CE")
    hidden: int = Field(128, ge=8, le=4096, description="width of each task head's hidden layer")


@methods.register("dplh")
class DPLH(DecouplingMethod):
    """DP-SGD on the whole multi-task face model (detection, landmarks, pose, gender, age), tasks weighted by
    learned uncertainty (DPLH)."""

    Params = DPLHParams
    paper_lr = 1.5e-4
    tracks = ("model",)
    dp_backbone = True
    needs = ("landmarks", "pose")

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        d, h = sum(spec.feature_dims), self.params.hidden
        self.generator["heads"] = nn.ModuleDict({t: nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k))
                                                 for t, k in TASKS.items()})
        self.base_names = [f"{u}_ce" for u in spec.utility]
        if self.params.weighting == "uncertainty":
            self.generator["log_var"] = nn.ParameterDict(
                {n: nn.Parameter(torch.zeros(())) for n in (*TASKS, *self.base_names)})

    @classmethod
    def nonfaces(cls, params, n_faces: int) -> int:
        return max(1, round(n_faces / params.faces_per_nonface))

    def optimizer_groups(self):
        return [OptimGroup("generator", list(self.generator.parameters()), dp=True, name="dplh_heads")]

    def task_losses(self, features: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        heads = self.generator["heads"]
        face = labels["face"].to(features.dtype)  # eq. 2, 4: the face label is a factor of each example's loss
        det = F.binary_cross_entropy_with_logits(heads["detection"](features)[:, 0], face)
        lm = ((heads["landmarks"](features) - labels["landmarks"]) ** 2).mean(1)
        pose = ((heads["pose"](features) - labels["pose"]) ** 2).mean(1)
        return {"detection": det, "landmarks": (lm * face).mean(), "pose": (pose * face).mean()}

    def losses(self, ctx):
        tasks = self.task_losses(ctx.features, ctx.labels)
        if self.params.weighting == "equal":
            return {"generator": tasks}
        s = self.generator["log_var"]
        terms = {f"weighted_{t}": 0.5 * torch.exp(-s[t]) * v + s[t] for t, v in tasks.items()}
        n = len(self.base_names)
        for c in self.base_names:  # reweigh the trainer's unweighted mean of the base components
            terms[f"weighted_{c}"] = (0.5 * torch.exp(-s[c]) - 1.0 / n) * ctx.base_losses[c] + s[c]
        return {"generator": terms}

    def on_evaluate(self, evaluation):
        if self.params.weighting == "equal":
            return None
        return {f"sigma2_{k}": math.exp(float(v.detach())) for k, v in self.generator["log_var"].items()}

    # -- utility of DPLH's own released heads on real Test (called by the model track) --------------------------
    @torch.no_grad()
    def task_metrics(self, features: torch.Tensor, labels: dict[str, torch.Tensor], resamples: int = 1000,
                     seed: int = 0) -> dict[str, dict]:
        """Detection accuracy (Test faces and held-out non-face patches, the training ratio), landmark MSE (units of the
        [-1, 1] image) and pose MAE in degrees on the faces, each with a bootstrap CI; the regression
        metrics take the error of predicting Test's mean (landmarks) or median (pose), a model that ignores the
        image, as their chance: a head is no better than that unless its whole CI lies below it."""
        heads = self.generator["heads"]
        features = features.to(next(heads.parameters()).device)
        labels = {k: v.to(features.device) for k, v in labels.items()}
        face = labels["face"].cpu().numpy().astype(bool)
        det = (heads["detection"](features)[:, 0] > 0).long().cpu().numpy()
        out = {"dplh_detection": accuracy_metric(face.astype(np.int64), det, 2, HIGHER, resamples, seed,
                                                 note="face vs non-face patch: Test faces and held-out patches")}
        f = torch.as_tensor(face, device=features.device)
        for name, pred, y, scale, unit in (
                ("dplh_landmarks_mse", heads["landmarks"](features[f]), labels["landmarks"][f], 1.0, "[-1, 1] units²"),
                ("dplh_pose_mae_deg", heads["pose"](features[f]), labels["pose"][f], 180 / math.pi, "degrees")):
            err = ((pred - y) ** 2).mean(1) if name.endswith("mse") else (pred - y).abs().mean(1) * scale
            const = ((y - y.mean(0)) ** 2).mean(1) if name.endswith("mse") else (y - y.median(0).values).abs().mean(1) * scale
            e = err.cpu().numpy().astype(np.float64)
            chance, ci = float(const.mean()), bootstrap_ci(lambda i: e[i].mean(), len(e), resamples, seed)
            out[name] = {"value": float(e.mean()), "direction": LOWER, "chance": chance, "n": int(len(e)), "ci": ci,
                         "ci_includes_chance": ci[0] <= chance <= ci[1],
                         "note": f"{unit}; chance: predicting Test's mean/median, {chance:.4f}"}
        return out
