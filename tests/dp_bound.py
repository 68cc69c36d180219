"""The DP known answer's ROC check, shared by the generator (data track) and the released-model MIA tests."""

import numpy as np
from scipy.stats import beta

from decobench.attacks.mia_generator import roc


def bound_violations(pos, neg, eps: float, delta: float) -> int:
    """ROC points whose TPR lies above e^ε·FPR + δ beyond their Clopper-Pearson bounds (95 % each side): an
    (ε, δ)-DP training run admits none, whatever the attack (a weak check at a few dozen examples: only a
    strong leak can fail it)."""
    fpr, tpr, _ = roc(pos, neg)
    tp, fp = np.rint(tpr * len(pos)), np.rint(fpr * len(neg))
    tpr_lo = np.where(tp > 0, beta.ppf(0.025, tp, len(pos) - tp + 1), 0.0)
    fpr_hi = np.where(fp < len(neg), beta.ppf(0.975, fp + 1, len(neg) - fp), 1.0)
    return int((tpr_lo > np.exp(eps) * fpr_hi + delta).sum())
