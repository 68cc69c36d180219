"""SynthFaces generator throughput at 64x64 on one core (goal: >= 2,000 images/s).

    python benchmarks/bench_synthfaces.py            # writes benchmarks/results/synthfaces_speed.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy elementwise code is single-threaded anyway

import platform
import time
from pathlib import Path

import numpy as np

from decobench.data.synthfaces import build_population, render_faces
from decobench.io import atomic_write_json


def main(n: int = 6000, repeats: int = 5) -> dict:
    out = {"command": "python benchmarks/bench_synthfaces.py", "images_per_run": n, "repeats": repeats,
           "machine": platform.machine(), "processor": platform.processor(), "numpy": np.__version__}
    for domain in ("synthfaces-a", "synthfaces-b"):
        t = time.perf_counter()
        pop = build_population(domain)
        out[f"{domain}_population_s"] = round(time.perf_counter() - t, 3)
        render_faces(pop, np.arange(64), 64)  # warm the texture banks
        rates = []
        for r in range(repeats):
            idx = np.arange(r * n, (r + 1) * n) % len(pop)
            t = time.perf_counter()
            render_faces(pop, idx, 64)
            rates.append(n / (time.perf_counter() - t))
        out[f"{domain}_images_per_s_64px"] = {"median": round(float(np.median(rates))),
                                              "min": round(min(rates)), "max": round(max(rates))}
        print(f"{domain}: median {np.median(rates):.0f} images/s at 64x64 (min {min(rates):.0f})")
    atomic_write_json(Path(__file__).parent / "results" / "synthfaces_speed.json", out)
    return out


if __name__ == "__main__":
    main()
