"""Difficulty calibration of SynthFaces against DECO-Bench's Baseline (Real) band.

Trains a ResNet18 from scratch per attribute on the real G split and tests it on Test, early
stopping on G-val (DECO-Bench's classifier protocol with a CPU profile). Writes a JSON record.

    python benchmarks/calibrate_synthfaces.py --domain synthfaces-a --profile embedded
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from decobench.data.labels import CLASSES
from decobench.data.open import open_dataset
from decobench.evaluation.classifier import PROFILES, accuracy, to_tensor, train_classifier
from decobench.io import atomic_write_json
from decobench.splits import load_split

BAND = {"race": (50, 80), "gender": (70, 92), "age": (35, 56)}  # DECO-Bench Baseline (Real), %


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", default="synthfaces-a")
    ap.add_argument("--profile", default="embedded", choices=sorted(PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-test", type=int, default=None, help="cap Test images (default: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = PROFILES[args.profile]
    ds = open_dataset(args.domain)
    t0 = time.time()
    data = {}
    for split in ("gen", "gen_val", "test"):
        ids = load_split(args.domain, split)
        if split == "test" and args.max_test:
            ids = ids[:: max(1, len(ids) // args.max_test)][: args.max_test]
        if split == "gen" and cfg.max_train_images:
            rng = np.random.default_rng(args.seed)
            ids = [ids[i] for i in sorted(rng.choice(len(ids), cfg.max_train_images, replace=False))]
        rows = ds.records.iloc[ds.index_of(ids)]
        data[split] = (to_tensor(ds.load_images(ids, size=64), cfg.image_size), rows)
    render_s = time.time() - t0
    results = {}
    for attr in ("race", "gender", "age"):
        t = time.time()
        y = {s: torch.tensor(data[s][1][attr].to_numpy(), dtype=torch.long) for s in data}
        model, hist = train_classifier(data["gen"][0], y["gen"], data["gen_val"][0], y["gen_val"],
                                       len(CLASSES[attr]), cfg, seed=args.seed, desc=f"{args.domain} {attr}")
        acc = 100 * accuracy(model, data["test"][0], y["test"])
        lo, hi = BAND[attr]
        results[attr] = {"test_accuracy_pct": round(acc, 2), "band_pct": [lo, hi], "in_band": lo <= acc <= hi,
                         "epochs": len(hist), "chance_pct": round(100 / len(CLASSES[attr]), 2),
                         "train_s": round(time.time() - t, 1)}
        print(f"{args.domain} {attr}: {acc:.2f}% (band {lo}-{hi}, chance {100 / len(CLASSES[attr]):.1f}%, "
              f"{len(hist)} epochs, {time.time() - t:.0f}s)", flush=True)
    record = {
        "command": f"python benchmarks/calibrate_synthfaces.py --domain {args.domain} --profile {args.profile}"
                   f" --seed {args.seed}" + (f" --max-test {args.max_test}" if args.max_test else ""),
        "domain": args.domain, "profile": args.profile, "classifier_config": cfg.as_dict(), "seed": args.seed,
        "train_images": len(data["gen"][1]), "val_images": len(data["gen_val"][1]),
        "test_images": len(data["test"][1]), "render_s": round(render_s, 1), "results": results,
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "machine": platform.machine(),
    }
    out = Path(args.out or f"benchmarks/results/calibration_{args.domain}_{args.profile}_seed{args.seed}.json")
    atomic_write_json(out, record)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
