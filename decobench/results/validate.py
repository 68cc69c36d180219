"""``decobench validate RESULT...``: every problem of a set of result files, listed at once.

Per file: readable JSON of the current schema, or of an older one it migrates (every schema problem by field); split hashes and data
fingerprints equal to the committed splits' manifest; the comparability key recomputes; provenance (a
clean commit, package versions); a DP block consistent with Opacus's accountant (ε recomputed from the
recorded history, steps, z, q). Across files: no cell twice (the board's row: same comparability key, method,
hyperparameters, training recipe and method version; and seed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from decobench.results.aggregate import recipe
from decobench.results.build import comparability_key
from decobench.results.migrate import MIGRATIONS, migrate
from decobench.results.schema import SCHEMA_VERSION, ResultValidationError, schema_problems


def result_files(paths: list[str | Path]) -> list[Path]:
    """The result.json files among ``paths`` (a folder: every one under it, caches left out)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += [f for f in sorted(p.rglob("result.json")) if ".cache" not in f.parts]
        else:
            out.append(p)
    return out


def _splits(result: dict, splits_root) -> list[str]:
    from decobench.splits import SplitError, read_manifest

    out = []
    for name, hashes in result.get("split_hashes", {}).items():
        try:
            manifest = read_manifest(name, splits_root)
        except SplitError as exc:
            out.append(f"split_hashes/{name}: {exc}")
            continue
        if hashes != manifest["files_sha256"]:
            bad = sorted(k for k in set(hashes) | set(manifest["files_sha256"])
                         if hashes.get(k) != manifest["files_sha256"].get(k))
            out.append(f"split_hashes/{name}: {', '.join(bad)} differ from the committed splits (the run used "
                       f"other splits; rerun it on the committed ones)")
        fp = result.get("data_fingerprints", {}).get(name)
        if str(fp).startswith("unknown"):
            out.append(f"data_fingerprints/{name}: {fp}: the data behind the result cannot be checked (regenerate it)")
        elif fp != manifest["dataset_fingerprint"]:
            out.append(f"data_fingerprints/{name}: {str(fp)[:12]} is not the committed splits' dataset "
                       f"({manifest['dataset_fingerprint'][:12]}): other labels or files")
    return out


def _dp(dp: dict) -> list[str]:
    from decobench.run.dp import epsilon

    out = []
    steps = sum(int(h[2]) for h in dp["history"])
    if steps != dp["steps"]:
        out.append(f"dp/steps: {dp['steps']}, but the accountant's history has {steps} steps")
    if any(h[1] != dp["sample_rate"] for h in dp["history"]):
        out.append(f"dp/history: a sampling rate other than dp/sample_rate {dp['sample_rate']}")
    if any(h[0] != dp["noise_multiplier"] for h in dp["history"]):
        out.append(f"dp/history: a noise multiplier other than dp/noise_multiplier {dp['noise_multiplier']}")
    try:
        again = epsilon(dp["accountant"], dp["history"], dp["delta"])
    except Exception as exc:  # noqa: BLE001 - whatever Opacus says about a malformed history is the problem
        return out + [f"dp: Opacus cannot recompute ε from the history ({exc})"]
    if (again is None) != (dp["epsilon"] is None) or (
            again is not None and not math.isclose(again, dp["epsilon"], rel_tol=1e-6)):
        out.append(f"dp/epsilon: {dp['epsilon']} recorded, Opacus's {dp['accountant']} accountant gives {again} "
                   f"from the recorded history at δ {dp['delta']}")
    target = dp.get("target_epsilon")
    if target is not None and again is not None and again > target * 1.01:
        out.append(f"dp/epsilon: {again:.4f} exceeds the target {target}")
    return out


def file_problems(result: dict, splits_root=None) -> list[str]:
    if result.get("schema_version") != SCHEMA_VERSION:
        if result.get("schema_version") not in MIGRATIONS:
            return [f"schema_version: v{result.get('schema_version')}, this decobench reads v{SCHEMA_VERSION} and "
                    f"migrates v{', v'.join(map(str, MIGRATIONS))} (regenerate the result)"]
        try:
            result = migrate(result)
        except ResultValidationError as exc:
            return [f"schema v{result.get('schema_version')} file does not migrate: {' '.join(str(exc).split())}"]
    out = schema_problems(result)
    if out:
        return out  # the checks below read fields the schema guarantees
    out += _splits(result, splits_root)
    if comparability_key(result) != result["comparability_key"]:
        out.append("comparability_key: does not recompute from the result's fields (edited by hand?)")
    commit = result["decobench_commit"]
    if commit == "unknown" or commit.endswith("-dirty"):
        out.append(f"decobench_commit: {commit}: not made by a clean checkout; the code behind it cannot be named")
    if not result["packages"].get("torch"):
        out.append("packages/torch: missing")
    if "dp" in result:
        out += _dp(result["dp"])
    return out


def problems(paths: list[str | Path], splits_root=None) -> dict[str, list[str]]:
    """{file: [problem, ...]} for every file with at least one problem."""
    out: dict[str, list[str]] = {}
    seen: dict[tuple, str] = {}
    files = result_files(paths)
    if not files:
        return {str(p): ["no result.json here"] for p in paths}
    for f in files:
        try:
            r = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            out[str(f)] = [f"not a readable JSON file ({exc})"]
            continue
        mine = file_problems(r, splits_root) if isinstance(r, dict) else ["not a JSON object"]
        try:  # the board's row: comparability key, method, hyperparameters, training recipe, method code, seed
            cell = (r["comparability_key"], r["method"], json.dumps(recipe(r), sort_keys=True), r["seed"])
        except (KeyError, TypeError, AttributeError):
            cell = None  # too malformed to place; its problems above say why
        if cell is not None and cell in seen:
            mine.append(f"duplicate cell: {seen[cell]} has the same comparability key, method, hyperparameters, "
                        f"training recipe, method version and seed {r['seed']}; keep one")
        if cell is not None:
            seen.setdefault(cell, str(f))
        if mine:
            out[str(f)] = mine
    return out
