"""What a suite cost: worker-seconds per track, setup and regime, read from the result files it made.

Each cell's ``stage_seconds.total`` is the wall time its worker spent on it; a stage another cell had already
made (the stage cache: a seed's real-data classifiers, a LoRA shared by G and V+G, setup B's reuse of A's
training) counts 0 there and in full in the cell that made it, so the sum is the suite's whole compute. With W
equal one-thread workers that never wait, the suite's wall time is about that sum / W.

    python benchmarks/suite_cost.py --runs leaderboard/results --preset embedded --workers 2 \
        --out benchmarks/results/suite_cost_embedded_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import defaultdict
from pathlib import Path

from decobench.io import atomic_write_json


def cost(runs: Path) -> dict[tuple, list[float]]:
    """(track, setup, regime) -> the total seconds of each cell found under ``runs``."""
    out = defaultdict(list)
    for f in sorted(runs.rglob("result.json")):
        r = json.loads(f.read_text())
        out[(r.get("track", "data"), r.get("setup", "-"), r.get("regime", "-"))].append(
            float(r["stage_seconds"]["total"]))
    return dict(out)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="leaderboard/results")
    ap.add_argument("--preset", default="embedded", help="the grid whose missing cells are counted")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from decobench.results.build import commit
    from decobench.results.expected import missing
    from decobench.suite.grid import load_grid

    groups = cost(Path(a.runs))
    rows = [{"track": t, "setup": s, "regime": g, "cells": len(v), "worker_s": round(sum(v)),
             "mean_cell_s": round(sum(v) / len(v))} for (t, s, g), v in sorted(groups.items())]
    total = sum(r["worker_s"] for r in rows)
    left = sum(len(m["seeds"]) for m in missing(load_grid(a.preset), a.runs))
    args = sys.argv[1:] if argv is None else argv
    rec = {"command": "python benchmarks/suite_cost.py " + " ".join(args), "runs": a.runs,
           "preset": a.preset, "cells_found": sum(r["cells"] for r in rows), "cells_missing": left,
           "worker_hours": round(total / 3600, 2), "workers": a.workers,
           "wall_hours_at_workers": round(total / 3600 / a.workers, 2), "groups": rows,
           "machine": platform.machine(), "commit": commit()}
    print(f"{'track':6} {'setup':5} {'regime':6} {'cells':>5} {'worker h':>9} {'min/cell':>9}")
    for r in rows:
        print(f"{r['track']:6} {r['setup']:5} {r['regime']:6} {r['cells']:5d} {r['worker_s'] / 3600:9.2f} "
              f"{r['mean_cell_s'] / 60:9.1f}")
    print(f"{rec['cells_found']} cells, {rec['worker_hours']} worker-hours, about {rec['wall_hours_at_workers']} h "
          f"on {a.workers} workers; {left} cells of the {a.preset} grid missing")
    if a.out:
        atomic_write_json(a.out, rec)
    return rec


if __name__ == "__main__":
    main()
