"""Collect result files, validate them, and render one Markdown table per comparable group.

Rows are comparable only within a group: same setup, regime, evaluation dataset, profile, base model
and Fréchet-distance kind (FID and a local-feature Fréchet distance are never put in one table).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from decobench.results.schema import validate

COLUMNS = [("privacy_pt_race", "Privacy PT race ↓"), ("privacy_probe_race", "Probe race ↓"),
           ("privacy_cls_race", "Privacy CLS race ↓"), ("utility_cls_age", "Utility CLS age ↑"),
           ("utility_cls_gender", "Utility CLS gender ↑")]


def collect(root: str | Path) -> list[dict]:
    out = []
    for p in sorted(Path(root).rglob("result.json")):
        if ".cache" in p.parts:
            continue
        r = json.loads(p.read_text())
        validate(r)
        r["_path"] = str(p)
        out.append(r)
    return out


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}"


def render(results: list[dict]) -> str:
    groups = defaultdict(list)
    for r in results:
        for ev in r["evaluations"]:
            fd = next(k for k in ev["metrics"] if k == "fid" or k.startswith("fd_"))
            key = (r["setup"], r["regime"], ev["dataset"], r["config"]["profile"], r["base_model"], fd)
            groups[key].append((r, ev))
    parts = []
    for (setup, regime, ds, profile, base, fd), rows in sorted(groups.items()):
        parts.append(f"### Setup {setup}, regime {regime}, evaluated on {ds} (profile {profile}, base {base})\n")
        parts.append("| method | seed | " + " | ".join(c for _, c in COLUMNS) + f" | {fd} ↓ |")
        parts.append("|---|---|" + "---|" * (len(COLUMNS) + 1))
        real = rows[0][1]["baseline_real"]
        parts.append("| Baseline (Real) | " + str(rows[0][0]["seed"]) + " | n/a | n/a | "
                     + " | ".join(_pct(real[k]) for k, _ in COLUMNS[2:]) + " | — |")
        for r, ev in sorted(rows, key=lambda x: (x[0]["method"], x[0]["seed"])):
            m = ev["metrics"]
            parts.append(f"| {r['method']} | {r['seed']} | " + " | ".join(_pct(m[k]["value"]) for k, _ in COLUMNS)
                         + f" | {m[fd]['value']:.2f} |")
        parts.append("")
    return "\n".join(parts)
