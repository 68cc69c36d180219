"""Wall time of ``decobench run`` from an empty cache (budgets: quick <= 2 min, embedded <= 10 min on 2 CPU cores).

    python benchmarks/bench_run.py --profile quick --method ce_mask --setup A
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from decobench.io import atomic_write_json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--method", default="ce_mask")
    ap.add_argument("--setup", default="A")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="decobench run --compile")
    ap.add_argument("--out", default=None, help="keep the run here (must not hold a cache yet); default: temp dir")
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="decobench-bench-"))
    if (out / ".cache").exists():
        raise SystemExit(f"{out} already holds a stage cache; a budget is measured from an empty one")
    cmd = [sys.executable, "-m", "decobench.cli.main", "run", "--method", args.method, "--setup", args.setup,
           "--profile", args.profile, "--device", args.device, *(["--compile"] if args.compile else []),
           "--out", str(out)]
    t = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - t
    res = json.loads(next((out / args.setup / args.method).glob("*/seed0/result.json")).read_text())
    record = {"command": f"python benchmarks/bench_run.py --profile {args.profile} --method {args.method} "
                         f"--setup {args.setup} --device {args.device}" + (" --compile" if args.compile else ""),
              "run_command": " ".join(["decobench", *cmd[3:-2]]), "wall_s_including_startup": round(wall, 1),
              "stage_seconds": res["stage_seconds"], "hardware": res["hardware"],
              "decobench_commit": res["decobench_commit"], "attacks": sorted(res["attacks"]),
              "training_steps": res["training"]["steps"], "selected_step": res["training"]["selected_step"],
              "classifier_epochs": {k: v for ev in res["evaluations"]
                                    for k, v in ev["attack_info"].get("cls", {}).items() if "epochs" in k}}
    name = f"run_{args.profile}_{args.method}_{args.setup}_{args.device}{'_compile' if args.compile else ''}.json"
    atomic_write_json(Path(__file__).parent / "results" / name, record)
    print(json.dumps(record, indent=2))
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
