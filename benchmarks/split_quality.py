"""Split quality recomputed from the committed split files (not from the manifests' own numbers).

    python benchmarks/split_quality.py     # writes benchmarks/results/split_quality.json
"""

from __future__ import annotations

from pathlib import Path

from decobench.data.open import open_dataset
from decobench.io import atomic_write_json
from decobench.splits import SPLITS, load_split, split_quality
from decobench.splits.store import stratification_columns


def main() -> None:
    out = {"command": "python benchmarks/split_quality.py"}
    for name in ("synthfaces-a", "synthfaces-b"):
        ds = open_dataset(name)
        where = {i: s for s in SPLITS for i in load_split(name, s)}
        assignment = ds.records["image_id"].map(where).to_numpy()
        cols = stratification_columns(ds)
        q = split_quality(ds.records, assignment, cols)
        out[name] = {s: {"size": q[s]["size"], "fraction": q[s]["fraction"], "target": q[s]["target_fraction"],
                         "size_error_pct": q[s]["size_error_pct"],
                         "max_class_deviation_pp": q[s]["max_class_deviation_pp"]} for s in SPLITS}
        worst = max(v["max_class_deviation_pp"] for v in out[name].values())
        size = max(v["size_error_pct"] for v in out[name].values())
        print(f"{name}: worst class-share deviation {worst:.2f} pp over {len(cols)} label columns; "
              f"worst size error {size:.2f} %")
    atomic_write_json(Path(__file__).parent / "results" / "split_quality.json", out)


if __name__ == "__main__":
    main()
