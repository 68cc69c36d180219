"""``quality``: KID and Fréchet distance of released G vs G_real, with a real-vs-real floor.

Features come from one fixed extractor shared by every run and every base, ``synthface-features-v1``
(decobench/models/face_features.py: a small CNN trained once on the disjoint pretraining population,
256-d), never from a network retrained per run. KID (torch-fidelity's unbiased polynomial-kernel MMD,
mean and std over random half-size subsets, CI = mean ± 2 std) is the headline: it is unbiased at any
sample size. The Fréchet distance
(torch-fidelity's formula) is reported beside it and only when there are at least 4 samples per feature
dimension (otherwise its covariances are near-singular and it reads n/a). The floor is the same metric
between G_real and real Test: what two real samples of one population score.
"""

from __future__ import annotations

import numpy as np
import torch

from decobench.attacks.base import Attack, AttackResult, CalibrationCase
from decobench.attacks.metrics import LOWER, not_applicable
from decobench.registry import attacks

MIN_SAMPLES_PER_DIM = 4


def kid(fa: torch.Tensor, fb: torch.Tensor, subsets: int, seed: int) -> dict:
    from torch_fidelity.metric_kid import kid_features_to_metric

    # subsets of half the data (at most 1,000) vary, so their spread is a (conservative) uncertainty
    size = min(1000, len(fa) // 2, len(fb) // 2)
    m = kid_features_to_metric(fa, fb, kid_subsets=subsets, kid_subset_size=size, kid_degree=3, kid_gamma=None,
                               kid_coef0=1, rng_seed=seed, verbose=False)
    mean, std = m["kernel_inception_distance_mean"], m["kernel_inception_distance_std"]
    return {"value": mean, "std": std, "ci": [mean - 2 * std, mean + 2 * std], "subset_size": size}


def frechet(fa: torch.Tensor, fb: torch.Tensor) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    sa, sb = fid_features_to_statistics(fa.double()), fid_features_to_statistics(fb.double())
    return float(fid_statistics_to_metric(sa, sb, verbose=False)["frechet_inception_distance"])


def quality_metrics(f_rel, f_real, f_test, subsets: int, seed: int) -> tuple[dict, dict]:
    from decobench.models.face_features import NAME

    metrics, floor = {}, {}
    k_rel, k_floor = kid(f_rel, f_real, subsets, seed), kid(f_test, f_real, subsets, seed)
    note = f"KID x 1000 on {NAME} features (fixed extractor), released G vs G_real"
    metrics["kid_synthface"] = {**{k: v * 1000 if k != "subset_size" else v for k, v in k_rel.items()
                                   if k != "ci"}, "ci": [c * 1000 for c in k_rel["ci"]],
                                "direction": LOWER, "note": note}
    floor["kid_synthface"] = {"value": k_floor["value"] * 1000, "std": k_floor["std"] * 1000,
                              "note": "real-vs-real floor: G_real vs Test"}
    n_min, dim = min(len(f_rel), len(f_real), len(f_test)), f_rel.shape[1]
    if n_min >= MIN_SAMPLES_PER_DIM * dim:
        metrics["fd_synthface"] = {"value": frechet(f_rel, f_real), "direction": LOWER,
                                   "note": f"Fréchet distance on {NAME} features, released G vs G_real"}
        floor["fd_synthface"] = {"value": frechet(f_test, f_real), "note": "real-vs-real floor: G_real vs Test"}
    else:
        metrics["fd_synthface"] = not_applicable(
            LOWER, f"{n_min} samples for {dim} feature dimensions (needs >= {MIN_SAMPLES_PER_DIM * dim})")
    return metrics, floor


@attacks.register("quality")
class ReleaseQuality(Attack):
    """KID and Fréchet distance (fixed synthface-features-v1 extractor), released G vs G_real, with floor."""

    accepts = ("data",)
    version = "2"

    def run(self, release) -> AttackResult:
        from decobench.models.face_features import embed, load

        net = load().to(self.ctx.device)
        f_rel = embed(net, release.released_gen.images)
        f_real, f_test = embed(net, release.real["gen"].images), embed(net, release.real["test"].images)
        metrics, floor = quality_metrics(f_rel, f_real, f_test, self.ctx.cfg.quality_subsets, self.ctx.seed)
        return AttackResult(metrics, reference={"real_vs_real": floor},
                            info={"quality_samples": {"released": len(f_rel), "real": len(f_real), "test": len(f_test)}})

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        """Absent: two disjoint real samples read the floor (KID CI reaches 0); planted: a blurred copy does not."""
        import torch.nn.functional as F

        from decobench.data.open import open_dataset
        from decobench.models.face_features import embed, load
        from decobench.splits import load_split

        ds, net = open_dataset("synthfaces-a"), load()
        ids = load_split("synthfaces-a", "test")
        rng = np.random.default_rng(seed)
        pick = rng.permutation(len(ids))[:1200]
        imgs = ds.load_images([ids[i] for i in pick], 32)
        a, b = imgs[:600], imgs[600:]
        x = torch.from_numpy(a).permute(0, 3, 1, 2).float()
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
        shifted = blurred.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()
        fb = embed(net, b)
        out = []
        for case, other in (("absent", a), ("planted", shifted)):
            m = kid(embed(net, other), fb, 20, seed)
            ok = m["ci"][0] > 0 if case == "planted" else m["ci"][0] <= 0
            out.append(CalibrationCase("quality", case, "kid", m["value"] * 1000, [c * 1000 for c in m["ci"]],
                                       "KID CI above 0" if case == "planted" else "KID CI reaches 0", bool(ok)))
        return out
