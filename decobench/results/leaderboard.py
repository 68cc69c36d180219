"""Collect result files, validate them, and render one Markdown table per comparable group.

Rows are comparable only under the same comparability key (split hashes, data fingerprints, base
weights, resolution, attack versions, profile, prompt policy, evaluation and release config, schema
major): :mod:`decobench.results.aggregate` groups them and makes the cells (mean and 95 % CI over the
declared seeds), :mod:`decobench.results.pareto` ranks the rows of a group in privacy-utility tiers.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from decobench.results.aggregate import Cell, Group, groups
from decobench.results.build import comparability_key
from decobench.results.pareto import NO_TIERS, axes, by_tier, tiers, unranked
from decobench.results.migrate import MIGRATIONS, migrate
from decobench.results.schema import SCHEMA_VERSION


def collect(root: str | Path, warn=print) -> list[dict]:
    out = []
    for p in sorted(Path(root).rglob("result.json")):
        if ".cache" in p.parts:
            continue
        r = json.loads(p.read_text())
        if r.get("schema_version") != SCHEMA_VERSION and r.get("schema_version") not in MIGRATIONS:
            warn(f"skipping {p}: schema v{r.get('schema_version')}, not v{SCHEMA_VERSION} (regenerate it)")
            continue
        r = migrate(r)  # an older schema is read into the current one, and keyed apart (results/migrate.py)
        if r.get("comparability_key") != comparability_key(r):  # the board groups by it: it must be the fields'
            warn(f"skipping {p}: its comparability key does not recompute from its fields (edited by hand?); "
                 f"decobench validate {p} says more")
            continue
        r["_path"] = str(p)
        out.append(r)
    return out


def decimals(half: float | None) -> int:
    """Two decimals, or as many as the CI's half-width needs for two significant figures (0.0043 -> 4): a
    narrow CI is never printed as ± 0.00 beside means that differ only in the digits cut off."""
    if not half or not math.isfinite(half) or abs(half) < 1e-9:  # equal seeds: a rounding error, not a width
        return 2
    return min(6, max(2, 1 - math.floor(math.log10(abs(half)))))


def fmt(cell: Cell) -> str:
    """mean ± CI half-width over seeds, in % for accuracies and rates; ° when the CI holds chance, ‡ when a
    privacy attack's whole CI lies below it."""
    if cell.mean is None:
        return "n/a"
    k = 100 if cell.percent else 1
    half = None if cell.lo is None else k * (cell.hi - cell.lo) / 2
    d = decimals(half)
    out = f"{k * cell.mean:.{d}f}"
    if half is not None:
        out += f" ± {half:.{d}f}"
    lower_privacy = cell.direction == "lower_is_better" and (cell.chance is not None or cell.majority is not None)
    return out + (" °" if lower_privacy and cell.includes_chance else " ‡" if cell.below_chance else "")


def _chance(cell: Cell | None) -> str:
    """An n/a record carries its chance but not its unit (it has no majority rate): a column no run measured
    shows no chance rather than a fraction beside percentages."""
    if cell is None or cell.mean is None or (cell.chance is None and cell.majority is None):
        return "—"
    k = 100 if cell.percent else 1
    ch = "—" if cell.chance is None else ref(k * cell.chance)
    return ch + ("" if cell.majority is None else f" / {ref(k * cell.majority)}")


def ref(x: float) -> str:
    """A chance or majority level: two decimals, or two significant figures below 0.1 (an MSE of 0.0174 is not
    0.02)."""
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"


def dp_label(dp: dict | None) -> str:
    """A DP row names its budget (the largest ε over its seeds, at δ) and says when the released part is not
    private."""
    if not dp:
        return ""
    eps = "∞" if dp["epsilon"] is None else f"{dp['epsilon']:.2f}"
    return f" (ε {eps}, δ {dp['delta']:g}" + ("" if dp["release_private"] else "; release not private") + ")"


def _heading(g: Group) -> str:
    c, r0 = g.components, g.r0
    where = f"{c['track'].capitalize()} track, setup {c['setup']}, regime {c['regime']}, {g.dataset}"
    if c["track"] == "cloak":
        cl = c["cloak"]
        return (f"### Cloak track, Privacy-Commons protocol, {g.dataset}: {r0['parameter_counts']['people']} people, "
                f"{r0['parameter_counts']['distractors']:,} distractors, {r0['resolution']} px, profile {c['profile']}, "
                f"targets {', '.join(cl['targets']) or 'the FR zoo'} (key {g.key})\n")
    model = (f"encoder {r0['base_model']} @ {r0['resolution']} px" if c["track"] == "model"
             else f"base {r0['base_model']} @ {r0['resolution']} px, prompt {c['prompt_policy']}")
    old = f", migrated from schema v{r0['schema_origin']}" if r0.get("schema_origin") else ""
    out = f"### {where}: sensitive {c['sensitive']}, profile {c['profile']}, {model}{old} (key {g.key})\n"
    if g.incomparable_with:
        out += (f"\n**Not comparable with group {g.incomparable_with}** (differs in "
                f"{', '.join(g.differs_in)}): its rows are neither averaged nor ranked with that group's.\n")
    return out


def render_group(g: Group) -> str:
    points = {id(p.row): p for p in tiers(g)}
    ax = axes(g)
    parts = [_heading(g)]
    if ax:
        listed = "; ".join([f"tier {t}: {', '.join(r.label + dp_label(r.dp) for r in rows)}"
                            for t, rows in by_tier(list(points.values())).items()]
                           + [f"not ranked ({why}): " + ", ".join(r.label for r in rows)
                              for why, rows in unranked(g).items()])
        parts.append(f"Pareto tiers (privacy {ax[0]} ↓, utility mean of {', '.join(ax[1])} ↑; a row dominates "
                     f"another only where their CIs separate): {listed}.\n" if listed
                     else NO_TIERS + "\n")
    cols = g.metrics
    some = g.specs
    arrows = {k: "↓" if some[k].direction == "lower_is_better" else "↑" for k in cols}
    parts.append("| method | tier | seeds | " + " | ".join(f"{k} {arrows[k]}" for k in cols) + " |")
    parts.append("|---|---|---|" + "---|" * len(cols))
    parts.append("| chance / majority | | | " + " | ".join(_chance(some[k]) for k in cols) + " |")
    for ref in g.references:
        parts.append(f"| {ref.label} | | {','.join(map(str, ref.seeds))} | "
                     + " | ".join(fmt(ref.cells[k]) if k in ref.cells else "—" for k in cols) + " |")
    for row in g.rows:
        if not row.complete:
            continue
        tier = points[id(row)].tier if id(row) in points else ""
        parts.append(f"| {row.label}{dp_label(row.dp)} | {tier} | {','.join(map(str, row.declared))} | "
                     + " | ".join(fmt(row.cells[k]) if k in row.cells else "n/a" for k in cols) + " |")
    aside = [f"{r.label}{dp_label(r.dp)}: {r.missing_reason}" for r in g.rows if not r.complete]
    if aside:
        parts.append("\nNot shown (incomplete): " + "; ".join(aside) + ".")
    reasons = na_reasons(g)
    if reasons:
        parts.append("\nn/a: " + "; ".join(f"{metric} for {', '.join(rows)}: {why}"
                                            for (metric, why), rows in reasons.items()) + ".")
    commits = sorted({r["decobench_commit"] for row in g.rows for r in row.results})
    parts.append(f"\n{CELLS_NOTE} Commit(s): {', '.join(commits)}.\n")
    return "\n".join(parts)


CELLS_NOTE = ("Cells: mean ± half-width of the 95 % CI over seeds (Student t, n − 1 df); ° = the CI holds chance "
              "(or the majority rate, for accuracies), each side widened by the attack's own CI over examples on that "
              "side where it gives one (√(h_seeds² + h_examples²)): the attack does no better than guessing there; ‡ = the "
              "whole widened CI lies below chance: the attack is systematically wrong on this data (it learned a "
              "different label mix or domain), a mis-calibrated attack, not extra privacy. For an error (↓, not an attack) "
              "with a chance level, ° = the widened CI reaches the error of a constant prediction: the head does no "
              "better than ignoring its input. "
              "Accuracies and rates in %. KID × 1000.")


def na_reasons(g: Group) -> dict[tuple[str, str], list[str]]:
    """{(metric, why): row labels} for every n/a cell of the group's shown rows."""
    out = defaultdict(list)
    for row in g.rows:
        if not row.complete:
            continue
        for k in g.metrics:
            cell = row.cells.get(k)
            if cell is None:
                out[(k, "the method's results report no such metric")].append(row.label)
            elif cell.mean is None:
                out[(k, cell.note or "no value (the result gives no reason)")].append(row.label)
    return dict(out)


def render(results: list[dict], seeds=None) -> str:
    """Markdown: one table per comparable group (``seeds``: declared seeds, see :func:`aggregate.groups`)."""
    from decobench.results.identity_table import render_identity

    gs = groups(results, seeds)
    return "\n".join([*(render_group(g) for g in gs), render_identity(gs)]).rstrip() + "\n"
