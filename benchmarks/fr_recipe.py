"""How the FR zoo's training recipe moves identity calibration (README, "Face-recognition zoo").

Trains one zoo-style model on a variant of ``synthfaces-fr`` and prints its calibration (same protocol as
``decobench fr train``: 2,000 probes of 500 enrolled people against 11,000 gallery images), e.g.

    OMP_NUM_THREADS=1 python benchmarks/fr_recipe.py --views 60 --per 60 --epochs 3        # the zoo's recipe
    OMP_NUM_THREADS=1 python benchmarks/fr_recipe.py --views 15 --per 12 --epochs 10       # few views, many passes
    OMP_NUM_THREADS=1 python benchmarks/fr_recipe.py --identities 6200 --train-ids 5000 --per 5 --views 15 --epochs 10

``--identities`` sizes the population; the last 1,400 identities are always validation (200), enrolled
(500) and distractors (700), so only the training side changes. Results: ``benchmarks/results/fr_recipe.md``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--identities", type=int, default=3200, help="population size")
    ap.add_argument("--train-ids", type=int, default=1800, help="identities that train the model")
    ap.add_argument("--views", type=int, default=60, help="photos per identity in the population")
    ap.add_argument("--per", type=int, default=60, help="photos per training identity actually used")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--family", default="resnet")
    ap.add_argument("--loss", default="arcface")
    args = ap.parse_args()

    import decobench.models.fr.train as T
    from decobench.data.synthfaces import DOMAINS

    held_out = ("val", "enrolled", "distractors")  # kept at the zoo's sizes, moved to the population's end
    widths = [T.IDENTITY_RANGES[k][1] - T.IDENTITY_RANGES[k][0] for k in held_out]
    if args.per > args.views or args.train_ids > args.identities - sum(widths):
        raise SystemExit(f"error: --per must be <= --views and --train-ids <= --identities - {sum(widths)}")
    DOMAINS[T.DOMAIN] = replace(DOMAINS[T.DOMAIN], n_identities=args.identities, images_per_identity=args.views)
    start = args.identities - sum(widths)
    T.IDENTITY_RANGES["train"] = (0, args.train_ids)
    for k, w in zip(held_out, widths):
        T.IDENTITY_RANGES[k], start = (start, start + w), start + w
    data = T.FRData()
    spec = T.ZooSpec("recipe", args.family, args.loss, epochs=args.epochs, images_per_identity=args.per)
    net, info = T.train_zoo_model(spec, data, log=lambda s: print(s, flush=True))
    calib = T.calibrate_identities(net, data, T.identity_protocol(data), {})
    print(json.dumps({"args": vars(args), "calibration": calib, "selected_epoch": info["selected_epoch"],
                      "train_s": info["train_s"]}))


if __name__ == "__main__":
    main()
