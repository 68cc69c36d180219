"""Cloak crafting time for N protected people (issue 9: "crafting 500 identities is practical on 2 cores").

Crafts masks for the first N of SynthFaces' 500 protected people with each method's default settings on
one surrogate (no scoring), and records seconds, people per minute and gradients per second.

    python benchmarks/bench_cloak.py --identities 500 --methods fi_uap,ga_opom_convex
    # -> results/cloak_craft_cpu.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from decobench.cloaks.craft import craft_masks
from decobench.cloaks.data import synthfaces
from decobench.io import atomic_write_json
from decobench.models.fr.train import to_unit
from decobench.models.fr.zoo import load_zoo_model
from decobench.registry import methods
from decobench.results.build import commit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--identities", type=int, default=500)
    ap.add_argument("--methods", default="fi_uap,opom_convex,ga_fi_uap,ga_opom_convex")
    ap.add_argument("--surrogate", default="resnet-arcface")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "cloak_craft_cpu.json"))
    args = ap.parse_args()
    people = synthfaces(args.identities, 1)
    n, side = people.craft.shape[1], people.craft.shape[2]
    images = to_unit(people.craft.reshape(-1, side, side, 3)).reshape(args.identities, n, 3, side, side)
    net = load_zoo_model(args.surrogate).net
    rows = []
    for name in args.methods.split(","):
        cls = methods.get(name)
        settings = cls.settings(cls.Params(surrogate=args.surrogate))
        t = time.perf_counter()
        craft_masks(images, net, settings, seed=0)
        s = time.perf_counter() - t
        grads = settings.gradients_per_identity(n) * args.identities
        rows.append({"method": name, "seconds": round(s, 1), "people_per_minute": round(60 * args.identities / s, 1),
                     "gradients_per_person": settings.gradients_per_identity(n),
                     "image_gradients_per_second": round(grads / s, 1)})
        print(rows[-1], flush=True)
    atomic_write_json(args.out, {
        "command": f"python benchmarks/bench_cloak.py --identities {args.identities} --methods {args.methods}",
        "identities": args.identities, "surrogate": args.surrogate, "image_side": side,
        "cpu_threads": torch.get_num_threads(), "machine": platform.machine(), "decobench_commit": commit(),
        "note": "one torch thread beside another 1-thread job on 2 cores (a conservative figure)",
        "rows": rows})


if __name__ == "__main__":
    main()
