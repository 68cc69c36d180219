"""Metric records every attack returns: value, direction, chance, majority rate, CI, and flags.

An accuracy is never printed alone: it carries balanced accuracy, the uniform-guess chance level,
the majority-class rate of its test set, and a percentile-bootstrap 95 % CI over test examples; a
privacy metric whose CI includes chance or the majority rate says so.
"""

from __future__ import annotations

import numpy as np

LOWER, HIGHER = "lower_is_better", "higher_is_better"


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    classes = np.unique(y_true)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in classes]))


def bootstrap_ci(stat, n: int, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap of ``stat(idx)`` over ``n`` examples resampled with replacement."""
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(resamples)])
    a = (1 - level) / 2
    return [float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))]


def accuracy_metric(y_true, y_pred, n_classes: int, direction: str, resamples: int = 1000, seed: int = 0,
                    note: str | None = None) -> dict:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ok = (y_true == y_pred).astype(np.float64)
    chance = 1.0 / n_classes
    majority = float(np.bincount(y_true, minlength=n_classes).max() / len(y_true))
    ci = bootstrap_ci(lambda i: ok[i].mean(), len(ok), resamples, seed)
    m = {"value": float(ok.mean()), "direction": direction, "chance": chance, "majority": majority,
         "balanced_accuracy": balanced_accuracy(y_true, y_pred),
         "balanced_ci": bootstrap_ci(lambda i: balanced_accuracy(y_true[i], y_pred[i]), len(ok),
                                     min(resamples, 300), seed + 1),
         "ci": ci, "n": int(len(ok))}
    m["ci_includes_chance"] = ci[0] <= chance <= ci[1]
    m["ci_includes_majority"] = ci[0] <= majority <= ci[1]
    if note:
        m["note"] = note
    return m


def not_applicable(direction: str, reason: str, chance: float | None = None) -> dict:
    return {"value": None, "direction": direction, "chance": chance, "note": f"n/a: {reason}"}


def reads_chance(m: dict) -> bool:
    """No evidence of a leak: the CI reaches down to chance or the majority rate."""
    return m["ci"][0] <= max(m["chance"], m["majority"]) + 1e-12
