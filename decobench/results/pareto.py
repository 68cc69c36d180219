"""Privacy-utility Pareto tiers with CI-aware dominance.

Two axes per group: privacy, the attack a track's table leads with (the sensitive attribute's CLS accuracy on
the data track, the fresh probe's on the model track; lower is better), and utility, the mean over the
utility metrics of the same kind (higher is better), each computed per seed and then averaged with a 95 %
Student-t CI over seeds. Row A is better than B on an axis only where their CIs separate; A dominates B when
it is better on one axis and worse on none. Tier 1 is every row nothing dominates; tier 2 what only tier 1
dominates; and so on. Rows in one tier are ties. A row with fewer than three declared seeds is not ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decobench.results.aggregate import Group, Row, seed_interval

# (privacy metric, utility prefix) per track; {s} is the sensitive attribute
AXES = {"data": ("privacy_cls_{s}", "utility_cls_"), "model": ("privacy_probe_{s}", "utility_heads_"),
        "cloak": ("privacy_fr_top1_blackbox", "utility_ssim")}


MIN_SEEDS = 3  # a row is ranked only over at least this many seeds (two give a t CI 12.7 s / √2 wide)


NO_TIERS = "Pareto tiers: none yet (no row has all its declared seeds)."  # both renderers' line for no ranked row


def by_tier(points: list[Point]) -> dict[int, list[Row]]:
    """Each tier's rows, the tiers in order and the rows in a tier by label (a tie has no order of its own)."""
    out: dict[int, list[Row]] = {}
    for p in sorted(points, key=lambda p: (p.tier, p.row.label)):
        out.setdefault(p.tier, []).append(p.row)
    return out


def unranked(group: Group) -> dict[str, list[Row]]:
    """Complete rows left out of the tiers, by why: fewer than MIN_SEEDS declared seeds, or a seed without a
    value on one of the group's axes (a rerun without the attack the axis reads). Empty without axes."""
    ax = axes(group)
    out: dict[str, list[Row]] = {}
    for row in (r for r in group.rows if r.complete and ax):
        why = (f"fewer than {MIN_SEEDS} seeds" if len(row.declared) < MIN_SEEDS
               else None if _axis_values(row, group, ax) else "a seed lacks the privacy or utility value")
        if why:
            out.setdefault(why, []).append(row)
    return out


@dataclass
class Point:
    row: Row
    privacy: tuple[float, float | None, float | None]   # mean, lo, hi (lower is better)
    utility: tuple[float, float | None, float | None]   # (higher is better)
    tier: int = 0


def axes(group: Group) -> tuple[str, list[str]] | None:
    c = group.components
    spec = AXES.get(c["track"])
    if spec is None:
        return None
    privacy = spec[0].format(s=c["sensitive"])
    utility = [k for k in group.metrics if k.startswith(spec[1])]
    return (privacy, utility) if privacy in group.metrics and utility else None


def _per_seed(row: Row, dataset: str, names: list[str]) -> list[float] | None:
    out = []
    for r in row.results:
        if r["seed"] not in row.declared:
            continue
        ev = next(e for e in r["evaluations"] if e["dataset"] == dataset)
        vals = [ev["metrics"].get(k, {}).get("value") for k in names]
        if any(v is None for v in vals):
            return None
        out.append(float(np.mean(vals)))
    return out


def _axis_values(row: Row, group: Group, ax: tuple[str, list[str]]) -> tuple[list[float], list[float]] | None:
    p, u = _per_seed(row, group.dataset, [ax[0]]), _per_seed(row, group.dataset, ax[1])
    return (p, u) if p and u else None


def _better(a, b, lower: bool) -> bool:
    """a better than b: CIs separate (point values when either has no CI)."""
    if a[1] is None or b[1] is None:
        return a[0] < b[0] if lower else a[0] > b[0]
    return a[2] < b[1] if lower else a[1] > b[2]


def dominates(a: Point, b: Point) -> bool:
    wins = [_better(a.privacy, b.privacy, True), _better(a.utility, b.utility, False)]
    losses = [_better(b.privacy, a.privacy, True), _better(b.utility, a.utility, False)]
    return any(wins) and not any(losses)


def tiers(group: Group) -> list[Point]:
    """The group's complete rows with their axes and tier (1 = not dominated); empty when the group has no
    such axes (its track names none, or its metrics lack them)."""
    ax = axes(group)
    if ax is None:
        return []
    points = []
    for row in group.rows:
        if not row.complete or len(row.declared) < MIN_SEEDS:  # no CI worth ranking by: not ranked
            continue
        values = _axis_values(row, group, ax)
        if values:
            points.append(Point(row, seed_interval(values[0]), seed_interval(values[1])))
    left, tier = list(points), 1
    while left:
        front = [a for a in left if not any(dominates(b, a) for b in left if b is not a)]
        for a in front:
            a.tier = tier
        left = [a for a in left if a not in front]
        tier += 1
    return points
