"""One data-track cell on one process against the same cell on several (torchrun, CPU): training and release time.

The same command twice, each in its own output folder (nothing shared but the committed splits): once as one
process with ``--threads`` threads, once as ``--procs`` processes (torchrun, gloo) with
``--threads / --procs`` threads each, so both use the same cores. Reads each run's stage seconds
(``train``, ``release``) from its result.json and checks that the two trained the same LoRA.

    python benchmarks/bench_parallel.py            # ce_mask, setup A, embedded profile at 100 steps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from decobench.io import atomic_write_json

SETS = ["max_steps=100", "eval_every=25", "release.max_images_per_split=512"]


def one_run(prefix: list[str], threads: int, out: Path, method: str) -> tuple[dict, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    cmd = [*prefix, "-m", "decobench.cli.main", "run", "--method", method, "--setup", "A", "--device", "cpu",
           "--attacks", "pt", "--out", str(out), *[a for s in SETS for a in ("--set", s)]]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    (f,) = out.glob(f"A/{method}/*/seed0/result.json")
    return json.loads(f.read_text()), load_file(str(f.parent / "pytorch_lora_weights.safetensors"))


def released(out: Path):
    from decobench.run.release import load_released

    (folder,) = [f for f in (out / ".cache").glob("release-*") if (f / "DONE").is_file()]
    return load_released(folder)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="ce_mask")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "parallel_cpu.json"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one, lora1 = one_run([sys.executable], a.threads, Path(tmp) / "one", a.method)
        many, lora2 = one_run(["torchrun", "--standalone", "--nproc_per_node", str(a.procs)],
                              max(1, a.threads // a.procs), Path(tmp) / "many", a.method)
        img1, img2 = (released(Path(tmp) / k).astype(int) for k in ("one", "many"))
    diff = max((lora1[k] - lora2[k]).abs().max().item() for k in lora1)
    stages = ("train", "release", "total")
    record = {
        "command": "python benchmarks/bench_parallel.py " + " ".join(sys.argv[1:]),
        "run_command": f"decobench run --method {a.method} --setup A --device cpu --attacks pt "
                       + " ".join(f"--set {s}" for s in SETS),
        "launcher": f"torchrun --standalone --nproc_per_node {a.procs} -m decobench.cli.main run ...",
        "machine": platform.machine(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
        "one_process": {"threads": a.threads, **{s: one["stage_seconds"].get(s) for s in stages}},
        "processes": {"processes": a.procs, "threads_each": max(1, a.threads // a.procs),
                      **{s: many["stage_seconds"].get(s) for s in stages}},
        "speedup": {s: round(one["stage_seconds"][s] / many["stage_seconds"][s], 2) for s in ("train", "release")},
        "max_lora_difference": diff,
        "released_images": {"n": len(img1), "max_grey_level_difference": int(abs(img1 - img2).max()),
                            "identical_pixels": round(float((img1 == img2).mean()), 6)},
        "selected_step": [one["training"]["selected_step"], many["training"]["selected_step"]],
    }
    atomic_write_json(Path(a.out), record)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
