"""``mia_generator``: membership inference against the released LoRA (white box), with a blind baseline.

Protocol (``/work/shared/ATTACKS.md``). Members are images the LoRA trained on, non-members identity-
disjoint images of the same distribution (the Test split). Latents are the VAE *mode* (posterior mean
times the scaling factor; the posterior is never sampled), ᾱ is the base scheduler's own
``alphas_cumprod`` (scaled-linear for SD), and every conditioned query uses the example's own
training-prompt text states. A fixed permutation (seed = the run seed) draws a *calibration* subset
(``eval.mia_calibration_samples`` per side) and a disjoint *scored* subset (``eval.mia_samples`` per
side), capped to what exists and balanced. Scores are oriented "higher = member":

- ``loss``: −‖ε − ε_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t, c)‖² (mean over elements), averaged over
  ``eval.mia_draws`` noise draws seeded per example (batching cannot change them);
- ``lossref``: the same loss minus the loss of the public base model (no LoRA) on the same noisy input
  (difficulty calibration, Watson et al. 2022): how much the LoRA *lowered* this example's loss. The
  base is public, so any attacker has this reference; n/a when the release names none;
- ``secmi`` (SecMI-stat): deterministic DDIM inversion (eta = 0, step 10, our own update on ε_θ) of x0
  from t = 0 to t_sec, one DDIM step forward to t_sec + 10 and one back; −‖x_t − x̂_t‖²;
  no label-trained "NN" variant is offered;
- ``pia``: ε0 = ε_θ(x0, 0); x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε0; −‖ε_θ(x_t, t) − ε0‖₄ with the paper's L4
  norm, (mean |·|⁴)^¼;
- ``blind``: no model access: nearest-centroid on standardised inputs (flattened latents and the mean
  text state) fitted on the calibration subset; its AUC above 0.5 measures member/non-member
  distribution shift that any attack above would also pick up.

Each attack's timestep (loss/PIA among 25, 50, 100, 200, 300; SecMI's t_sec among 50, 100, 200) is the
one with the best AUC on the *calibration* subset; only that timestep is then run on the scored subset.
Nothing is chosen on scored examples. Metrics (lower is better for the data holder): AUC and TPR at 1 %
and 0.1 % FPR from the exact ROC (every distinct score a threshold, ties kept together); TPR@FPR is read
at the ROC point with the largest realised FPR not above the target (the lowest such threshold), whose
realised FPR is reported; below 1/target scored non-members it is n/a. CIs: stratified percentile
bootstrap (members and non-members resampled separately).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from decobench.attacks import metrics as metrics_module
from decobench.attacks.base import (Attack, AttackResult, CalibrationCase, GeneratorAccess, cached_result,
                                    source_digest)
from decobench.attacks.metrics import LOWER, not_applicable
from decobench.registry import attacks

LOSS_T = (25, 50, 100, 200, 300)    # candidates for loss and PIA
SECMI_T = (50, 100, 200)            # candidates for SecMI's t_sec
SECMI_STEP = 10
NAMES = ("loss", "lossref", "secmi", "pia", "blind")
FPR_TARGETS = (("fpr1", 0.01), ("fpr01", 0.001))
BATCH = 128


# ---- exact ROC --------------------------------------------------------------------------------------
def roc(pos, neg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC (fpr, tpr, thresholds), starting at (0, 0): predict member when score >= threshold."""
    s = np.concatenate([np.asarray(pos, float), np.asarray(neg, float)])
    if not np.isfinite(s).all():
        raise ValueError("membership scores must be finite")
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]   # last position of each group of tied scores
    tp = np.cumsum(y)[last]
    fp = last + 1 - tp
    return np.r_[0.0, fp / len(neg)], np.r_[0.0, tp / len(pos)], np.r_[np.inf, s[last]]


def roc_auc(fpr, tpr) -> float:
    """Trapezoid area of the exact ROC = P(member > non-member) + ½ P(tie)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def tpr_at_fpr(fpr, tpr, target: float, n_neg: int) -> tuple[float, float]:
    """(TPR, realised FPR) at the ROC point with the largest FPR <= target (integer counts, no rounding)."""
    fp = np.rint(fpr * n_neg)
    k = int(np.searchsorted(fp, np.floor(target * n_neg + 1e-9), side="right")) - 1
    return float(tpr[k]), float(fpr[k])


def auc(pos, neg) -> float:
    return roc_auc(*roc(pos, neg)[:2])


def mia_metrics(name: str, pos, neg, resamples: int = 1000, seed: int = 0) -> dict[str, dict]:
    """AUC and TPR at each target FPR, with stratified percentile-bootstrap CIs."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)

    def stats(p, q):
        f, t, _ = roc(p, q)
        return [roc_auc(f, t), *(v for _, a in FPR_TARGETS for v in tpr_at_fpr(f, t, a, len(q)))]
    point = stats(pos, neg)
    rng = np.random.default_rng(seed)
    boot = np.array([stats(pos[rng.integers(0, len(pos), len(pos))], neg[rng.integers(0, len(neg), len(neg))])
                     for _ in range(resamples)])
    lo, hi = np.quantile(boot, 0.025, axis=0), np.quantile(boot, 0.975, axis=0)
    n = {"n": len(pos) + len(neg), "n_members": len(pos), "n_nonmembers": len(neg)}

    def record(j, chance, **extra):
        ci = [float(lo[j]), float(hi[j])]
        return {"value": point[j], "direction": LOWER, "chance": chance, "ci": ci,
                "ci_includes_chance": ci[0] <= chance <= ci[1], **n, **extra}
    out = {f"privacy_mia_{name}_auc": record(0, 0.5)}
    for i, (key, a) in enumerate(FPR_TARGETS):
        need = int(round(1 / a))
        if len(neg) < need:
            out[f"privacy_mia_{name}_tpr_{key}"] = {**not_applicable(
                LOWER, f"TPR at {a:.1%} FPR needs >= {need} scored non-members (>= {10 * need} to be tight); "
                f"{len(neg)} were scored", chance=a), "unit": "fraction", "headline": False}
        else:
            # TPRs stay in result.json (unit: printed in %); the leaderboard's headline is the AUC
            out[f"privacy_mia_{name}_tpr_{key}"] = record(1 + 2 * i, a, realised_fpr=point[2 + 2 * i],
                                                          note=f"realised FPR {point[2 + 2 * i]:.4%}",
                                                          unit="fraction", headline=False)
    return out


def all_not_applicable(names, reason: str) -> dict[str, dict]:
    return {f"privacy_mia_{n}_{k}": not_applicable(LOWER, reason, c)
            for n in names for k, c in (("auc", 0.5), *((f"tpr_{key}", a) for key, a in FPR_TARGETS))}


# ---- scores -----------------------------------------------------------------------------------------
@torch.no_grad()
def score_examples(gen: GeneratorAccess, lat, idx, side: int, spec: dict[str, tuple[int, ...]], draws: int = 4,
                   seed: int = 0, batch: int = BATCH) -> tuple[dict[tuple[str, int], np.ndarray], int]:
    """Scores of examples ``idx`` of ``lat`` for each (attack, timestep) in ``spec``; returns (scores, UNet
    queries counted per example). The noise of example i comes from a CPU generator seeded by (seed, side,
    i), so neither batching nor the device changes it."""
    dev, ac, sf = gen.device, gen.alphas_cumprod.double(), float(gen.scaling_factor)
    a = lambda t: float(ac[t])  # noqa: E731
    out = {(k, t): [] for k, ts in spec.items() for t in ts}
    queries = 0

    def eps(x, t, c, model=None):
        nonlocal queries
        queries += len(x)
        return (model or gen.eps)(x, torch.full((len(x),), t, dtype=torch.long, device=dev), c).float()

    def ddim(x, e, t_from, t_to):
        x0 = (x - (1 - a(t_from)) ** 0.5 * e) / a(t_from) ** 0.5
        return a(t_to) ** 0.5 * x0 + (1 - a(t_to)) ** 0.5 * e

    def mean_of(v, p=2):
        return v.abs().pow(p).flatten(1).mean(1)
    idx = np.asarray(idx, dtype=np.int64)
    for b in range(0, len(idx), batch):
        ib = torch.as_tensor(idx[b:b + batch])
        x0 = (lat.mean[ib].float() * sf).to(dev)
        c = lat.text[ib].float().to(dev)
        loss_ts = sorted({*spec.get("loss", ()), *spec.get("lossref", ())})
        if loss_ts:
            noise = torch.stack([torch.randn((draws, *x0.shape[1:]), generator=torch.Generator().manual_seed(
                int(np.random.SeedSequence([seed, side, int(i)]).generate_state(1)[0]))) for i in ib]).to(dev)
            for t in loss_ts:
                noisy = [a(t) ** 0.5 * x0 + (1 - a(t)) ** 0.5 * noise[:, d] for d in range(draws)]
                loss = sum(mean_of(noise[:, d] - eps(noisy[d], t, c)) for d in range(draws)) / draws
                if t in spec.get("loss", ()):
                    out["loss", t].append(-loss)
                if t in spec.get("lossref", ()):  # difficulty calibration: the same query on the public base
                    ref = sum(mean_of(noise[:, d] - eps(noisy[d], t, c, gen.eps_reference)) for d in range(draws))
                    out["lossref", t].append(-(loss - ref / draws))
        if spec.get("secmi"):
            x, t = x0, 0
            while t < max(spec["secmi"]):
                x, t = ddim(x, eps(x, t, c), t, t + SECMI_STEP), t + SECMI_STEP
                if t in spec["secmi"]:
                    fwd = ddim(x, eps(x, t, c), t, t + SECMI_STEP)
                    back = ddim(fwd, eps(fwd, t + SECMI_STEP, c), t + SECMI_STEP, t)
                    out["secmi", t].append(-mean_of(x - back))
        if spec.get("pia"):
            e0 = eps(x0, 0, c)
            for t in spec["pia"]:
                out["pia", t].append(-mean_of(eps(a(t) ** 0.5 * x0 + (1 - a(t)) ** 0.5 * e0, t, c) - e0, 4) ** 0.25)
    return {k: torch.cat(v).double().cpu().numpy() if v else np.zeros(0) for k, v in out.items()}, queries


def _blind(gen: GeneratorAccess, cal: tuple, scored: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (identity covariance) on standardised inputs, fitted on the calibration subset."""
    def feats(lat, idx):
        i = torch.as_tensor(idx)
        return torch.cat([lat.mean[i].float().flatten(1), lat.text[i].float().mean(1)], 1).double().numpy()
    fm, fn = feats(gen.members, cal[0]), feats(gen.nonmembers, cal[1])
    both = np.concatenate([fm, fn])
    mu, sd = both.mean(0), both.std(0) + 1e-6
    w = (fm.mean(0) - fn.mean(0)) / sd
    mid = ((fm.mean(0) + fn.mean(0)) / 2 - mu) / sd
    score = lambda f: ((f - mu) / sd - mid) @ w  # noqa: E731  (= half the difference of squared distances)
    return score(feats(gen.members, scored[0])), score(feats(gen.nonmembers, scored[1]))


def _gap(pos, neg) -> float:
    return float((pos.mean() - neg.mean()) / (np.concatenate([pos, neg]).std() + 1e-12))


def attack_generator(gen: GeneratorAccess, samples: int, calibration_samples: int, draws: int = 4,
                     resamples: int = 1000, seed: int = 0, batch: int = BATCH, names=NAMES, log=None) -> AttackResult:
    """The whole attack on one released generator (``run()`` and ``calibrate()`` both call it); ``names``:
    the attacks to run (calibrate() runs the loss attack alone)."""
    start = time.time()
    n_m, n_n = len(gen.members), len(gen.nonmembers)
    avail = min(n_m, n_n)
    n_cal = min(calibration_samples, avail // 2)
    n_sc = min(samples, avail - n_cal)
    counts = {"members_available": n_m, "nonmembers_available": n_n, "calibration_per_side": n_cal,
              "scored_per_side": n_sc}
    if n_cal < 5 or n_sc < 10:
        return AttackResult(all_not_applicable(names, f"too few members/non-members ({n_m}/{n_n}) for a "
                                               f"calibration and a scored subset"), info=counts)
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(n_m), rng.permutation(n_n)
    cal, scored = (pm[:n_cal], pn[:n_cal]), (pm[n_cal:n_cal + n_sc], pn[n_cal:n_cal + n_sc])
    no_reference = "lossref" in names and gen.eps_reference is None
    if no_reference:
        names = tuple(n for n in names if n != "lossref")  # n/a below
    full = {k: ts for k, ts in (("loss", LOSS_T), ("lossref", LOSS_T), ("secmi", SECMI_T), ("pia", LOSS_T))
            if k in names}

    def both(sub, spec):
        sm, qm = score_examples(gen, gen.members, sub[0], 0, spec, draws, seed, batch)
        sn, qn = score_examples(gen, gen.nonmembers, sub[1], 1, spec, draws, seed, batch)
        return sm, sn, qm + qn
    cm, cn, q_cal = both(cal, full)
    cal_auc = {k: {str(t): auc(cm[k, t], cn[k, t]) for t in ts} for k, ts in full.items()}
    # best calibration AUC; ties (frequent on small calibration sets) go to the larger standardised gap
    chosen = {k: int(max(ts, key=lambda t: (cal_auc[k][str(t)], _gap(cm[k, t], cn[k, t]))))
              for k, ts in full.items()}
    if log:
        log(f"mia_generator: timesteps chosen on calibration {chosen}")
    sm, sn, q_sc = both(scored, {k: (t,) for k, t in chosen.items()})
    pos = {k: sm[k, t] for k, t in chosen.items()}
    neg = {k: sn[k, t] for k, t in chosen.items()}
    if "blind" in names:
        pos["blind"], neg["blind"] = _blind(gen, cal, scored)
    metrics = {}
    for j, k in enumerate(names):
        metrics.update(mia_metrics(k, pos[k], neg[k], resamples, seed + j))
    if no_reference:
        metrics.update(all_not_applicable(("lossref",), "the release gives no reference (base) model"))
    info = {**counts, "chosen_timesteps": chosen, "calibration_auc": cal_auc, "draws": draws,
            "secmi_step": SECMI_STEP, "unet_queries": {"calibration": q_cal, "scored": q_sc},
            "blind": "nearest centroid on standardised latents + mean text state, fitted on calibration",
            "wall_seconds": round(time.time() - start, 2)}
    return AttackResult(metrics, info=info)


@attacks.register("mia_generator")
class GeneratorMembership(Attack):
    """Membership inference on the released LoRA: denoising loss, SecMI, PIA, and a blind baseline."""

    accepts = ("data",)
    version = "1"

    def run(self, release) -> AttackResult:
        gen = getattr(release, "generator", None)
        if gen is None:
            return AttackResult(all_not_applicable(NAMES, "the release gives no white-box access to its generator"))
        cfg, seed = self.ctx.cfg, self.ctx.seed

        def compute():
            return attack_generator(gen, cfg.mia_samples, cfg.mia_calibration_samples, cfg.mia_draws, cfg.bootstrap,
                                    seed, log=self.ctx.log)
        # the answer depends on the generator and its member sets, not on which images were released: the G and
        # V+G cells of one trained LoRA (and setup B, which trains as A does) share one computation
        inputs = None if gen.key is None else {
            **gen.key, "attack": "mia_generator", "version": self.version, "seed": seed,
            "code": source_digest(sys.modules[__name__], metrics_module),
            "settings": [cfg.mia_samples, cfg.mia_calibration_samples, cfg.mia_draws, cfg.bootstrap]}
        return cached_result(self.ctx, "mia_generator", inputs, compute)

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        """Known answers on the tiny base (see :func:`calibration_generators`): the loss attack's AUC must
        have its CI above 0.6 with the LoRA overfitted on the members (planted) and contain 0.5 with the
        zero-initialised LoRA, i.e. the base, which saw neither side (absent); the same for ``lossref`` with the
        base as reference (absent: target = reference, every score ties at 0)."""
        gens = calibration_generators(seed)
        out = []
        for case in ("planted", "absent"):
            res = attack_generator(gens[case], CAL_N - CAL_CAL, CAL_CAL, 4, 500, seed, names=("loss", "lossref"))
            for name in ("loss", "lossref"):
                m = res.metrics[f"privacy_mia_{name}_auc"]
                ok = m["ci"][0] > 0.6 if case == "planted" else m["ci_includes_chance"]
                out.append(CalibrationCase("mia_generator", case, f"{name} auc", m["value"], m["ci"],
                                           "CI above 0.6" if case == "planted" else "CI contains 0.5", bool(ok)))
        return out


# calibration: members (= non-members) per side, of which calibration subset; LoRA steps, LR, top timestep
CAL_N, CAL_CAL, CAL_STEPS, CAL_LR, CAL_T_MAX = 24, 6, 150, 3e-2, 300


def unet_access(unet, scheduler_config: dict, members, nonmembers, scaling_factor: float, null,
                device="cpu") -> GeneratorAccess:
    """A GeneratorAccess on a UNet (with its LoRA), as a runner would build one."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_config({k: v for k, v in scheduler_config.items() if not k.startswith("_")})

    @torch.no_grad()
    def eps(x, t, c):
        return unet(x, t, c).sample
    return GeneratorAccess(eps, sched.alphas_cumprod.float(), members, nonmembers, scaling_factor, null, device)


def calibration_generators(seed: int = 0, n: int = CAL_N, steps: int = CAL_STEPS, lr: float = CAL_LR,
                           t_max: int = CAL_T_MAX) -> dict[str, GeneratorAccess]:
    """Tiny base; n SynthFaces members (train split) and n non-members (test split), both with the null
    prompt. "absent": a copy of the UNet with its zero-initialised rank-4 LoRA; "planted": that LoRA
    overfitted on the members' VAE modes (denoising MSE, AdamW, full batch, timesteps uniform below
    ``t_max``, where the attacks query; ~35-45 s of one CPU thread)."""
    import copy

    from diffusers import DDPMScheduler

    from decobench.data.open import open_dataset
    from decobench.models.base import load_base
    from decobench.models.lora import add_lora
    from decobench.run.stages import encode_latents, null_text, subset_ids
    from decobench.run.train import LatentSet
    from decobench.splits import load_split

    base = load_base("tiny-synthface")
    base.freeze_frozen_parts()
    ds, null = open_dataset("synthfaces-a"), null_text(base, "cpu")
    sets = {}
    for side, split in (("members", "train"), ("nonmembers", "test")):
        ids = subset_ids(load_split("synthfaces-a", split), n)
        mean, std = encode_latents(base.vae, ds.load_images(ids, base.resolution), "cpu")
        sets[side] = LatentSet(mean, std, null.expand(len(mean), -1, -1).clone(), {})
    torch.manual_seed(seed)
    add_lora(base.unet, rank=4)
    absent = copy.deepcopy(base.unet).eval()
    sf = float(base.vae.config.scaling_factor)
    sched = DDPMScheduler.from_config({k: v for k, v in base.scheduler_config.items() if not k.startswith("_")})
    x0, c = sets["members"].mean.float() * sf, sets["members"].text.float()
    params = [p for p in base.unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    base.unet.train()
    for _ in range(steps):
        t = torch.randint(0, t_max, (len(x0),), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        loss = torch.nn.functional.mse_loss(base.unet(sched.add_noise(x0, noise, t), t, c).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    base.unet.eval()
    gens = {case: unet_access(u, base.scheduler_config, sets["members"], sets["nonmembers"], sf, null)
            for case, u in (("planted", base.unet), ("absent", absent))}
    for g in gens.values():  # the reference model: the base with its zero-initialised LoRA
        g.eps_reference = gens["absent"].eps
    return gens
