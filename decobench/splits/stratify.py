"""Assign images to Tr / V / G / G-val / Test by multi-label stratification over original labels.

DECO-Bench §4.1: Tr/G/Test = 0.60/0.25/0.15, with 0.1 of Tr held out as V and 0.1 of G held out as
G-val. Where identities exist, whole identities are assigned (no person in two splits).

Step 1 is iterative stratification (Sechidis et al. 2011, the ``iterative-stratification``
package), applied as the paper's nested splits. Step 2 is our addition: a seeded local search that
swaps units of equal size between splits while that lowers the largest deviation of any class
share from its share in the whole dataset. On identity-grouped data the first step alone leaves
deviations of several points in the small splits (V, G-val); the swaps bring them under one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

SPLITS = ("train", "val", "gen", "gen_val", "test")
FRACTIONS = {"train": 0.54, "val": 0.06, "gen": 0.225, "gen_val": 0.025, "test": 0.15}
PAPER_NAMES = {"train": "Tr", "val": "V", "gen": "G", "gen_val": "G-val", "test": "Test"}


def class_matrix(records: pd.DataFrame, columns) -> tuple[np.ndarray, list[str]]:
    """One-hot [n_images, n_classes] over every value of every stratification column."""
    blocks, names = [], []
    for col in columns:
        vals = records[col].astype(str)
        cats = sorted(vals.unique())
        blocks.append((vals.to_numpy()[:, None] == np.array(cats)[None]).astype(np.int32))
        names += [f"{col}={c}" for c in cats]
    return np.concatenate(blocks, 1), names


def _units(records: pd.DataFrame, onehot: np.ndarray, grouped: bool):
    """Units that move together (identities or single images), their class counts and sizes."""
    if not grouped:
        return np.arange(len(records)), onehot, np.ones(len(records), np.int64)
    unit_of_image = pd.factorize(records["identity"])[0]
    n_units = unit_of_image.max() + 1
    counts = np.zeros((n_units, onehot.shape[1]), np.int64)
    np.add.at(counts, unit_of_image, onehot)
    sizes = np.bincount(unit_of_image, minlength=n_units)
    return unit_of_image, counts, sizes


def _mss(labels: np.ndarray, idx: np.ndarray, test_fraction: float, seed: int):
    sss = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    a, b = next(sss.split(np.zeros(len(idx)), labels[idx]))
    return idx[a], idx[b]


def _initial(majority: np.ndarray, seed: int) -> np.ndarray:
    """Nested iterative stratification exactly as the paper describes it."""
    n = len(majority)
    split = np.empty(n, np.int64)
    rest, test = _mss(majority, np.arange(n), FRACTIONS["test"], seed)
    tr, g = _mss(majority, rest, 0.25 / 0.85, seed + 1)
    tr_only, v = _mss(majority, tr, 0.1, seed + 2)
    g_only, gv = _mss(majority, g, 0.1, seed + 3)
    for name, ix in zip(SPLITS, (tr_only, v, g_only, gv, test)):
        split[ix] = SPLITS.index(name)
    return split


def _fix_sizes(split: np.ndarray, sizes: np.ndarray, seed: int) -> np.ndarray:
    """Move single units from over-full to under-full splits while that brings sizes nearer target."""
    rng = np.random.default_rng(seed)
    n_img = sizes.sum()
    target = np.array([FRACTIONS[s] for s in SPLITS]) * n_img
    for _ in range(len(split)):
        have = np.bincount(split, weights=sizes, minlength=len(SPLITS))
        over, under = int(np.argmax(have - target)), int(np.argmin(have - target))
        cand = np.flatnonzero(split == over)
        u = cand[rng.integers(len(cand))]
        before = abs(have[over] - target[over]) + abs(have[under] - target[under])
        after = abs(have[over] - sizes[u] - target[over]) + abs(have[under] + sizes[u] - target[under])
        if after >= before:
            break
        split[u] = under
    return split


def _deviation(counts_by_split: np.ndarray, sizes_by_split: np.ndarray, overall: np.ndarray) -> np.ndarray:
    return counts_by_split / np.maximum(sizes_by_split, 1)[:, None] - overall[None]


def _refine(split: np.ndarray, counts: np.ndarray, sizes: np.ndarray, class_blocks: list[slice],
            seed: int, iters: int) -> np.ndarray:
    """Swap equal-size units between splits while the objective sum(|dev|^4) decreases."""
    rng = np.random.default_rng(seed)
    k = len(SPLITS)
    n_img = sizes.sum()
    overall = counts.sum(0) / n_img
    cbs = np.zeros((k, counts.shape[1]))
    np.add.at(cbs, split, counts)
    sbs = np.bincount(split, weights=sizes, minlength=k)
    members = [list(np.flatnonzero(split == s)) for s in range(k)]
    dev = _deviation(cbs, sbs, overall)
    for _ in range(iters):
        # aim at the worst (split, class) cell: move a unit of that class out of / into that split
        s, c = np.unravel_index(np.argmax(np.abs(dev)), dev.shape)
        other = rng.integers(0, k - 1)
        other = other + (other >= s)
        a = members[s][rng.integers(len(members[s]))]
        b = members[other][rng.integers(len(members[other]))]
        if sizes[a] != sizes[b]:
            continue
        diff = counts[b] - counts[a]  # what split s gains (and `other` loses) by swapping
        if dev[s, c] > 0 and diff[c] >= 0 or dev[s, c] < 0 and diff[c] <= 0:
            continue
        new_s = dev[s] + diff / sbs[s]
        new_o = dev[other] - diff / sbs[other]
        if (new_s ** 4).sum() + (new_o ** 4).sum() < (dev[s] ** 4).sum() + (dev[other] ** 4).sum():
            dev[s], dev[other] = new_s, new_o
            split[a], split[b] = other, s
            members[s][members[s].index(a)] = b
            members[other][members[other].index(b)] = a
    return split


def assign_splits(records: pd.DataFrame, columns, seed: int = 0, refine_iters: int = 60000) -> np.ndarray:
    """Split name (one of SPLITS) for every row of ``records``."""
    grouped = "identity" in records and bool((records["identity"] >= 0).all())
    onehot, names = class_matrix(records, columns)
    unit_of_image, counts, sizes = _units(records, onehot, grouped)
    # iterative stratification needs one binary label row per unit: the majority class per column
    majority = np.zeros_like(counts)
    start = 0
    blocks = []
    for col in columns:
        width = sum(1 for nm in names if nm.startswith(f"{col}="))
        blk = slice(start, start + width)
        majority[np.arange(len(counts)), start + counts[:, blk].argmax(1)] = 1
        blocks.append(blk)
        start += width
    split = _fix_sizes(_initial(majority, seed), sizes, seed)
    if refine_iters:
        split = _refine(split, counts, sizes, blocks, seed, refine_iters)
    return np.array(SPLITS)[split[unit_of_image]]


def split_quality(records: pd.DataFrame, assignment: np.ndarray, columns) -> dict:
    """Per split: size, fraction vs target, and each class's share vs its share in the whole data."""
    onehot, names = class_matrix(records, columns)
    overall = onehot.mean(0)
    out = {}
    for s in SPLITS:
        m = assignment == s
        share = onehot[m].mean(0) if m.any() else np.zeros_like(overall)
        dev = (share - overall) * 100
        frac = m.mean()
        out[s] = {
            "size": int(m.sum()), "fraction": round(float(frac), 6), "target_fraction": FRACTIONS[s],
            "size_error_pct": round(float(abs(frac - FRACTIONS[s]) / FRACTIONS[s] * 100), 4),
            "max_class_deviation_pp": round(float(np.abs(dev).max()), 4),
            "class_share_pct": {nm: round(float(v * 100), 4) for nm, v in zip(names, share)},
        }
    out["_overall_share_pct"] = {nm: round(float(v * 100), 4) for nm, v in zip(names, overall)}
    return out
