"""``mia_model``: membership inference against a released encoder with task heads (model track).

Members are images the released model trained on, non-members identity-disjoint images of the same
distribution it never saw; ``eval.mia_samples`` of each are scored. Signals are read from the released
heads on the example's own labels, averaged over the image and its horizontal flip (the model-track
recipe trains with flips; ``mirror=False`` reads the image alone):

- ``loss`` (Yeom et al. 2018): Σ_tasks log p(y_task | x), i.e. minus the summed cross-entropy. No
  references: the floor every other attack must beat.
- References: the pool is the scored members and non-members; reference j trains by the release's own
  ``recipe`` on a half of the pool (every example IN exactly k/2 of the k references, Carlini et al.'s
  balanced ``keep``), padded with the attacker's auxiliary population to the released model's training
  size. The target itself is never trained on or tuned against.
- ``lira_online`` (Carlini et al., S&P 2022): φ = Σ_tasks (z_y − logsumexp_{k≠y} z_k); per example the
  mean of φ over the references that had it (IN) and that did not (OUT), with one global σ for IN and
  one for OUT (the paper's fixed-variance variant for few references, each σ from its own side);
  score = log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²).
- ``lira_offline``: OUT references only, the paper's one-sided test: score = log Φ((φ − μ_out)/σ_out).
- ``rmia`` (Zarifzadeh et al., ICML 2024), online: P(x) = mean over all references of p(y | x);
  score(x) = share of population examples z (auxiliary images no model trained on) with
  [p(x|θ)/P(x)] / [p(z|θ)/P(z)] > γ = 1.

Metrics (lower is better for the data holder): AUC and TPR at 1 % / 0.1 % FPR from the exact ROC with
realised FPR and stratified bootstrap CIs (shared with ``mia_generator``); n/a below 1/FPR non-members.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm

from decobench.attacks.base import Attack, AttackResult, CalibrationCase, RealSplit, ReleasedModel
from decobench.attacks.mia_generator import all_not_applicable, mia_metrics
from decobench.registry import attacks

NAMES = ("model_loss", "model_lira_online", "model_lira_offline", "model_rmia")


@torch.no_grad()
def signals(model: ReleasedModel, split: RealSplit, tasks: list[str], mirror: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """(Σ log p_y, Σ logit margin φ) per example over ``tasks``, averaged over the image and (``mirror``, for
    models trained with horizontal flips) its mirror image."""
    views = (split.images, split.images[:, :, ::-1].copy()) if mirror else (split.images,)
    logp, phi = np.zeros(len(split.images)), np.zeros(len(split.images))
    for images in views:
        out = model.heads(images)
        for t in tasks:
            z = out[t].double()
            y = torch.tensor(split.labels[t].to_numpy(), dtype=torch.long)
            zy = z.gather(1, y[:, None]).squeeze(1)
            others = z.scatter(1, y[:, None], float("-inf"))
            logp += (zy - torch.logsumexp(z, 1)).numpy() / len(views)
            phi += (zy - torch.logsumexp(others, 1)).numpy() / len(views)
    return logp, phi


def balanced_keep(k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """[k, n] membership of the pool in the references: each example IN exactly k // 2 of them."""
    return rng.uniform(size=(k, n)).argsort(0) < k // 2


def lira_scores(target: np.ndarray, refs: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(online, offline) LiRA scores of the pool from the target's φ and the references' φ [k, n]."""
    n_in, n_out = keep.sum(0), (~keep).sum(0)
    mu_in = np.where(keep, refs, 0).sum(0) / np.maximum(n_in, 1)
    mu_out = np.where(~keep, refs, 0).sum(0) / np.maximum(n_out, 1)
    sd_in, sd_out = refs[keep].std() + 1e-6, refs[~keep].std() + 1e-6
    online = norm.logpdf(target, mu_in, sd_in) - norm.logpdf(target, mu_out, sd_out)
    offline = norm.logcdf((target - mu_out) / sd_out)
    return online, offline


def rmia_scores(target_x, refs_x, target_z, refs_z, gamma: float = 1.0) -> np.ndarray:
    """Online RMIA from log p(y|x): target [n], references [k, n]; population z likewise [m], [k, m]."""
    def log_ratio(t, r):
        return t - (np.logaddexp.reduce(r, axis=0) - np.log(len(r)))
    rx, rz = log_ratio(target_x, refs_x), log_ratio(target_z, refs_z)
    return (rx[:, None] - rz[None, :] > np.log(gamma)).mean(1)


def attack_model(target: ReleasedModel, members: RealSplit, nonmembers: RealSplit, recipe, tasks: list[str],
                 samples: int, references: int, auxiliary: RealSplit | None, train_size: int, population: int,
                 resamples: int = 1000, seed: int = 0, log=None, mirror: bool = True) -> AttackResult:
    """The whole attack (``run()`` and ``calibrate()`` both call it); ``mirror``: average each signal over the
    image and its mirror (for models trained with flips)."""
    start = time.time()
    rng = np.random.default_rng(seed)
    n = min(samples, len(members.images), len(nonmembers.images))
    if n < 10:
        return AttackResult(all_not_applicable(NAMES, f"too few members/non-members ({len(members.images)}/"
                                               f"{len(nonmembers.images)}) to score"))
    pool = RealSplit.concat([members.take(rng.permutation(len(members.images))[:n]),
                              nonmembers.take(rng.permutation(len(nonmembers.images))[:n])])
    is_member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    t_logp, t_phi = signals(target, pool, tasks, mirror)
    metrics = mia_metrics("model_loss", t_logp[is_member], t_logp[~is_member], resamples, seed)
    info = {"scored_per_side": n, "tasks": tasks, "references": references}
    reasons = []
    if recipe is None:
        reasons.append("the release gives no training recipe for reference models")
    if references < 2:
        reasons.append(f"{references} reference models (>= 2 needed)")
    n_pad = max(0, train_size - n)
    n_aux = 0 if auxiliary is None else len(auxiliary.images)
    if not reasons and n_aux < n_pad + population:
        reasons.append(f"the auxiliary population has {n_aux} images; references need {n_pad} for padding and "
                       f"RMIA {population} more")
    if reasons:
        metrics.update(all_not_applicable(NAMES[1:], "; ".join(reasons)))
        return AttackResult(metrics, info=info)
    keep = balanced_keep(references, 2 * n, rng)
    padding = auxiliary.take(np.arange(n_pad))
    z = auxiliary.take(np.arange(n_pad, n_pad + population))
    z_logp = signals(target, z, tasks, mirror)[0]
    r_logp, r_phi, rz_logp = [], [], []
    for j in range(references):
        ref = recipe(RealSplit.concat([pool.take(np.flatnonzero(keep[j])), padding]), seed * 1000 + j + 1)
        lp, ph = signals(ref, pool, tasks, mirror)
        r_logp.append(lp)
        r_phi.append(ph)
        rz_logp.append(signals(ref, z, tasks, mirror)[0])
        if log:
            log(f"mia_model: reference {j + 1}/{references} trained ({time.time() - start:.0f} s)")
    online, offline = lira_scores(t_phi, np.stack(r_phi), keep)
    rmia = rmia_scores(t_logp, np.stack(r_logp), z_logp, np.stack(rz_logp))
    for j, (name, s) in enumerate((("model_lira_online", online), ("model_lira_offline", offline),
                                   ("model_rmia", rmia))):
        metrics.update(mia_metrics(name, s[is_member], s[~is_member], resamples, seed + 1 + j))
    info.update({"padding_per_reference": n_pad, "rmia_population": population, "rmia_gamma": 1.0,
                 "wall_seconds": round(time.time() - start, 2)})
    return AttackResult(metrics, info=info)


@attacks.register("mia_model")
class ModelMembership(Attack):
    """Membership inference on a released encoder's heads: LOSS, LiRA (online, offline), RMIA."""

    accepts = ("model",)
    version = "1"
    #: reference models (k) and RMIA's population size on CPU; LiRA's paper uses 64-256 references
    references = 4
    population = 1000

    def run(self, release) -> AttackResult:
        cfg = self.ctx.cfg
        tasks = [t for t in release.utility if t in release.members.labels.columns]
        return attack_model(release.model, release.members, release.nonmembers, release.recipe, tasks,
                            cfg.mia_samples, getattr(cfg, "mia_references", self.references), release.auxiliary,
                            release.train_size,
                            self.population, cfg.bootstrap, self.ctx.seed, log=self.ctx.log)

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        """Known answers with a small MLP on random 8x8 images with random labels (memorisation only; it
        trains without flips, so signals are read on the image alone):
        "planted", the target trained on the members, must give every attack's AUC a CI above 0.6;
        "absent", the target trained on other images, must give CIs that hold 0.5."""
        data = calibration_data(seed)
        out = []
        for case in ("planted", "absent"):
            target = mlp_recipe(data["members"] if case == "planted" else data["outsiders"], seed)
            res = attack_model(target, data["members"], data["nonmembers"], mlp_recipe, ["label"], CAL_N, 8,
                               data["auxiliary"], CAL_N, 300, 500, seed, mirror=False)
            for name in NAMES:
                m = res.metrics[f"privacy_mia_{name}_auc"]
                ok = m["ci"][0] > 0.6 if case == "planted" else m["ci_includes_chance"]
                out.append(CalibrationCase("mia_model", case, f"{name.removeprefix('model_')} auc", m["value"],
                                           m["ci"], "CI above 0.6" if case == "planted" else "CI contains 0.5",
                                           bool(ok)))
        return out


CAL_N, CAL_SIZE, CAL_CLASSES = 100, 8, 4


def calibration_data(seed: int = 0) -> dict[str, RealSplit]:
    """Random uint8 images with random labels: members, non-members, outsiders, an auxiliary population."""
    rng = np.random.default_rng(seed)

    def split(name, n):
        labels = pd.DataFrame({"label": rng.integers(0, CAL_CLASSES, n)})
        return RealSplit(rng.integers(0, 256, (n, CAL_SIZE, CAL_SIZE, 3), dtype=np.uint8), labels,
                         [f"{name}{i}" for i in range(n)])
    return {"members": split("m", CAL_N), "nonmembers": split("n", CAL_N), "outsiders": split("o", CAL_N),
            "auxiliary": split("a", 400)}


def mlp_recipe(train: RealSplit, seed: int, epochs: int = 150) -> ReleasedModel:
    """The calibration's training recipe: a 2-layer MLP on the pixels, full-batch Adam."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    d = CAL_SIZE * CAL_SIZE * 3
    net = torch.nn.Sequential(torch.nn.Linear(d, 256), torch.nn.ReLU(), torch.nn.Linear(256, CAL_CLASSES))
    x = torch.as_tensor(train.images, dtype=torch.float32).flatten(1) / 127.5 - 1
    y = torch.tensor(train.labels["label"].to_numpy(), dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        loss = torch.nn.functional.cross_entropy(net(x[perm]), y[perm])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()

    def features(images):
        with torch.no_grad():
            return net[:2](torch.as_tensor(images.copy(), dtype=torch.float32).flatten(1) / 127.5 - 1)

    return ReleasedModel(encode=features, heads=lambda images: {"label": net[2](features(images))})
