"""Split files on disk: ``splits/<dataset>/<split>.txt`` (one image id a line) and ``manifest.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

import decobench
from decobench.io import atomic_write_json, atomic_write_text, sha256_file
from decobench.splits.stratify import FRACTIONS, PAPER_NAMES, SPLITS, assign_splits, split_quality

SEED = 0
MANIFEST_VERSION = 1


class SplitError(Exception):
    pass


def splits_dir(override: str | Path | None = None) -> Path:
    """Where split folders live: --splits-dir, $DECOBENCH_SPLITS, the checkout's splits/, or ./splits."""
    if override:
        return Path(override)
    if os.environ.get("DECOBENCH_SPLITS"):
        return Path(os.environ["DECOBENCH_SPLITS"])
    checkout = Path(decobench.__file__).resolve().parent.parent / "splits"
    return checkout if checkout.is_dir() else Path.cwd() / "splits"


def stratification_columns(dataset) -> list[str]:
    """Original labels plus their mapped groups (a coarsening of them), so both stay balanced."""
    return list(dataset.strat_columns) + [a for a in dataset.attributes if a not in dataset.strat_columns]


def compute_assignment(dataset, seed: int = SEED) -> dict[str, list[str]]:
    cols = stratification_columns(dataset)
    assignment = assign_splits(dataset.records, cols, seed=seed)
    ids = dataset.records["image_id"].to_numpy()
    return {s: sorted(ids[assignment == s].tolist()) for s in SPLITS}, assignment, cols


def build_splits(dataset, root: str | Path | None = None, seed: int = SEED) -> dict:
    """Compute and write the splits of ``dataset``; returns the manifest."""
    out = splits_dir(root) / dataset.name
    by_split, assignment, cols = compute_assignment(dataset, seed)
    files = {}
    for s in SPLITS:
        atomic_write_text(out / f"{s}.txt", "".join(f"{i}\n" for i in by_split[s]))
        files[f"{s}.txt"] = sha256_file(out / f"{s}.txt")
    quality = split_quality(dataset.records, assignment, cols)
    leak = identity_overlap(dataset, by_split)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(),
        "n_images": int(len(dataset.records)),
        "excluded_rows": len(dataset.problems),
        "decobench_version": decobench.__version__,
        "method": "iterative-stratification MultilabelStratifiedShuffleSplit (nested, as DECO-Bench) "
                  "+ size balancing + seeded equal-size swap refinement",
        "seed": seed,
        "stratified_on": cols,
        "identity_disjoint": dataset.has_identities,
        "identities_in_two_splits": leak,
        "paper_names": PAPER_NAMES,
        "target_fractions": FRACTIONS,
        "sizes": {s: quality[s]["size"] for s in SPLITS},
        "max_class_deviation_pp": {s: quality[s]["max_class_deviation_pp"] for s in SPLITS},
        "size_error_pct": {s: quality[s]["size_error_pct"] for s in SPLITS},
        "class_share_pct": {s: quality[s]["class_share_pct"] for s in SPLITS},
        "overall_class_share_pct": quality["_overall_share_pct"],
        "files_sha256": files,
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def identity_overlap(dataset, by_split: dict[str, list[str]]) -> int:
    if not dataset.has_identities:
        return 0
    ident = dict(zip(dataset.records["image_id"], dataset.records["identity"]))
    seen: dict[int, str] = {}
    shared = set()
    for s, ids in by_split.items():
        for i in {ident[x] for x in ids}:
            if i in seen and seen[i] != s:
                shared.add(i)
            seen[i] = s
    return len(shared)


def read_manifest(name: str, root: str | Path | None = None) -> dict:
    path = splits_dir(root) / name / "manifest.json"
    if not path.is_file():
        raise SplitError(f"no splits for {name!r} at {path.parent}; run: decobench splits build --dataset {name}"
                         f" [--root DATA_DIR]")
    return json.loads(path.read_text())


def load_split(name: str, split: str, root: str | Path | None = None, fingerprint: str | None = None) -> list[str]:
    """Image ids of one split, after checking the file's sha256 against the manifest.

    ``fingerprint``: the dataset's label fingerprint as loaded now; when it disagrees with the one the
    manifest recorded, the splits were built from other data and using them is an error."""
    if split not in SPLITS:
        raise SplitError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    manifest = read_manifest(name, root)
    if fingerprint is not None and manifest["dataset_fingerprint"] != fingerprint:
        raise SplitError(f"the splits of {name} were built from different data (manifest fingerprint "
                         f"{manifest['dataset_fingerprint'][:12]}, data now {fingerprint[:12]}): labels or files "
                         f"changed; check with: decobench splits verify --dataset {name}, then rebuild with "
                         f"decobench splits build --dataset {name}")
    path = splits_dir(root) / name / f"{split}.txt"
    if not path.is_file():
        raise SplitError(f"split file {path} is missing; rebuild with: decobench splits build --dataset {name}")
    if sha256_file(path) != manifest["files_sha256"][f"{split}.txt"]:
        raise SplitError(f"{path} does not match the sha256 in its manifest: it was edited or is corrupt; "
                         f"run: decobench splits verify --dataset {name}")
    return path.read_text().split()


def split_hashes(name: str, root: str | Path | None = None) -> dict[str, str]:
    return read_manifest(name, root)["files_sha256"]


def verify_splits(dataset, root: str | Path | None = None) -> list[str]:
    """Recompute the splits from the data and compare with what is on disk; returns every difference."""
    problems = []
    folder = splits_dir(root) / dataset.name
    try:
        manifest = read_manifest(dataset.name, root)
    except SplitError as exc:
        return [str(exc)]
    if manifest["dataset_fingerprint"] != dataset.fingerprint():
        problems.append("the dataset's labels differ from those the splits were built from "
                        "(dataset_fingerprint mismatch): different files, labels or exclusions")
    for fname, digest in manifest["files_sha256"].items():
        p = folder / fname
        if not p.is_file():
            problems.append(f"{fname}: missing")
        elif sha256_file(p) != digest:
            problems.append(f"{fname}: sha256 differs from manifest (file edited or corrupt)")
    by_split, _, _ = compute_assignment(dataset, manifest.get("seed", SEED))
    for s in SPLITS:
        p = folder / f"{s}.txt"
        if not p.is_file():
            continue
        on_disk = p.read_text().split()
        if on_disk != by_split[s]:
            a, b = set(on_disk), set(by_split[s])
            problems.append(f"{s}.txt: differs from the recomputed split ({len(a - b)} ids only on disk, "
                            f"{len(b - a)} only recomputed, e.g. {sorted(a ^ b)[:3]})")
    if identity_overlap(dataset, {s: (folder / f"{s}.txt").read_text().split()
                                  for s in SPLITS if (folder / f"{s}.txt").is_file()}):
        problems.append("some identities appear in two splits")
    return problems


def deviation_summary(manifest: dict) -> tuple[float, float]:
    return (float(np.max(list(manifest["max_class_deviation_pp"].values()))),
            float(np.max(list(manifest["size_error_pct"].values()))))
