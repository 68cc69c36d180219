"""Collect result files, validate them, and render one Markdown table per comparable group.

Rows are comparable only under the same comparability key (split hashes, data fingerprints, base
weights, resolution, attack versions, profile, prompt policy, evaluation and release config, schema
major). Each cell is the mean ± standard deviation over the seeds present, with the seed count; a
privacy cell whose every seed's CI includes chance or the majority rate is marked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from decobench.results.schema import SCHEMA_VERSION, validate
from decobench.results.table import in_percent, is_accuracy


def collect(root: str | Path, warn=print) -> list[dict]:
    out = []
    for p in sorted(Path(root).rglob("result.json")):
        if ".cache" in p.parts:
            continue
        r = json.loads(p.read_text())
        if r.get("schema_version") != SCHEMA_VERSION:
            warn(f"skipping {p}: schema v{r.get('schema_version')}, not v{SCHEMA_VERSION} (regenerate it)")
            continue
        validate(r)
        r["_path"] = str(p)
        out.append(r)
    return out


def _cell(ms: list[dict]) -> str:
    vals = [m["value"] for m in ms if m.get("value") is not None]
    if not vals:
        return "n/a"
    acc = is_accuracy(ms[0])
    k = 100 if in_percent(ms[0]) else 1
    mean, std = k * float(np.mean(vals)), (k * float(np.std(vals, ddof=1)) if len(vals) > 1 else None)
    s = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
    if (acc or "ci_includes_chance" in ms[0]) and ms[0]["direction"] == "lower_is_better" and all(
            m.get("ci_includes_chance") or m.get("ci_includes_majority") for m in ms):
        s += " °"
    return s


def _row_labels(rows: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The method's name, plus the hyperparameters that differ between its rows (when it has several)."""
    out = {}
    for method, params in rows:
        mine = json.loads(params)
        others = [json.loads(p) for m, p in rows if m == method and p != params]
        diff = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
        out[(method, params)] = method + (f" [{', '.join(f'{k}={mine[k]}' for k in diff)}]" if diff else "")
    return out


def _dp_label(results: list[dict]) -> str:
    """DP runs name their budget: the largest ε over the seeds (the accountant's, at the recorded δ), and
    say so when the released part (the generator) is not among the private players."""
    dps = [r["dp"] for r in results if "dp" in r]
    if not dps:
        return ""
    eps = [d["epsilon"] for d in dps]
    worst = "∞" if None in eps else f"{max(eps):.2f}"
    released = all("generator" in d.get("private_players", ["generator"]) for d in dps)
    return f" (ε {worst}, δ {max(d['delta'] for d in dps):g}" + ("" if released else "; release not private") + ")"


def render(results: list[dict]) -> str:
    groups = defaultdict(list)
    for r in results:
        for ev in r["evaluations"]:
            groups[(r["comparability_key"], ev["dataset"])].append((r, ev))
    parts = []
    for (key, ds), rows in sorted(groups.items(), key=lambda kv: (kv[1][0][0]["setup"], kv[0][1], kv[0][0])):
        r0 = rows[0][0]
        # non-headline metrics (e.g. every FR model of a linkage attack) stay in result.json only
        found = {k: m for _, ev in rows for k, m in ev["metrics"].items() if m.get("headline", True)}
        cols = sorted(found, key=lambda k: (not k.startswith("privacy_"), not k.startswith("utility_"), k))
        parts.append(f"### Setup {r0['setup']}, regime {r0['regime']}, {ds}: sensitive {r0['sensitive']}, "
                     f"profile {r0['profile']}, prompt {r0['prompt_policy']}, base {r0['base_model']} "
                     f"@ {r0['resolution']} px (key {key})\n")
        arrows = {k: "↓" if found[k]["direction"] == "lower_is_better" else "↑" for k in cols}
        parts.append("| method | seeds | " + " | ".join(f"{k} {arrows[k]}" for k in cols) + " |")
        parts.append("|---|---|" + "---|" * len(cols))
        by_method = defaultdict(list)  # a row per method *and* hyperparameters: an ε sweep is never averaged
        for r, ev in rows:
            by_method[(r["method"], json.dumps(r.get("method_params", {}), sort_keys=True))].append((r, ev))
        labels = _row_labels(list(by_method))
        for label, ref_key in (("Baseline (Real)", "baseline_real"), ("real vs real (floor)", "real_vs_real"),
                               ("real sources (unprotected)", "real_source"),
                               ("constant reconstruction (floor)", "constant_floor")):
            cells = []
            for k in cols:  # a reference is shared by every method of a seed: count each distinct one once
                found = [ev["reference"].get(ref_key, {}).get(k) for _, ev in rows]
                ms = list({json.dumps(m, sort_keys=True): m for m in found if m}.values())
                cells.append(_cell([{**m, "direction": "higher_is_better"} for m in ms]) if ms else "—")
            if any(c != "—" for c in cells):
                parts.append(f"| {label} | | " + " | ".join(cells) + " |")
        for row, mrows in sorted(by_method.items()):
            seeds = sorted(r["seed"] for r, _ in mrows)
            cells = [_cell([ev["metrics"][k] for _, ev in mrows if k in ev["metrics"]]) for k in cols]
            parts.append(f"| {labels[row]}{_dp_label([r for r, _ in mrows])} | {','.join(map(str, seeds))} | "
                         + " | ".join(cells) + " |")
        commits = sorted({r["decobench_commit"] for r, _ in rows})
        parts.append(f"\nAccuracies in %, mean ± std over seeds; ° = every seed's 95 % CI includes chance or the "
                     f"majority rate (accuracies) or chance (rates). KID × 1000. Commit(s): {', '.join(commits)}.\n")
    return "\n".join(parts)
