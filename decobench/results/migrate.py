"""Read result files of every schema version: older ones are migrated, in memory, to the current schema.

A migrated result keeps what it measured and says what it lacks: ``schema_origin`` names the version it
was written in, fields the old schema did not record read ``"unknown (schema vN)"``, and the
comparability key is computed with the origin's schema major, so a migrated file is never averaged or
ranked with a current one (the board shows it in its own group, with the reason). Each version's frozen
file is a test fixture (``tests/fixtures/results/``).

v1 (before core v2, 2026-11-22): fixed CLS/PT/probe/FD evaluation, no attack plugins, race only, no
method version or hyperparameters, no data fingerprints or base-weight hash, metrics without CIs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from decobench.results.schema import SCHEMA_VERSION, ResultValidationError, validate

# v1 metric name prefix -> the attack that made it (v1 attacks were not plugins: their version is "v1")
_V1_ATTACKS = {"privacy_cls_": "cls", "utility_cls_": "cls", "privacy_pt_": "pt", "privacy_probe_": "probe",
               "fd": "quality", "fid": "quality", "frechet": "quality"}
_V1_RESOLUTION = {"tiny-synthface": 32, "sd15": 512}  # v1 trained and released at the base's native size


def _from_v1(r: dict) -> dict:
    unknown = "unknown (schema v1)"
    out = copy.deepcopy(r)
    cfg = out["config"]
    metrics = [m for ev in out["evaluations"] for m in ev["metrics"]]
    attacks = sorted({a for m in metrics for p, a in _V1_ATTACKS.items() if m.startswith(p)})
    out.update({
        "schema_version": SCHEMA_VERSION, "schema_origin": 1, "track": "data",
        "method_version": unknown, "method_params": {}, "sensitive": "race",
        "profile": cfg["profile"], "prompt_policy": cfg["train"]["prompt_policy"],
        "data_fingerprints": {n: unknown for n in out["split_hashes"]},
        "base_weights": unknown, "resolution": cfg.get("resolution", _V1_RESOLUTION.get(out["base_model"], 0)),
        "attacks": {a: "v1" for a in attacks} or {"v1": "v1"},
    })
    for ev in out["evaluations"]:
        majority = ev.pop("majority_class_rate", {})
        for name, m in ev["metrics"].items():  # accuracies get their attribute's majority rate, as v2 records
            attr = name.rsplit("_", 1)[-1]
            if name.startswith(("privacy_cls_", "utility_cls_", "privacy_pt_", "privacy_probe_")) and attr in majority:
                m.setdefault("majority", majority[attr])
        real = ev.pop("baseline_real", {})  # v1: bare values of the classifiers trained on real G
        ev.setdefault("reference", {"baseline_real": {
            k: {**ev["metrics"][k], "value": v} for k, v in real.items()
            if isinstance(v, (int, float)) and k in ev["metrics"]}} if real else {})
        ev.setdefault("attack_info", {})
    from decobench.results.build import comparability_key

    out["comparability_key"] = comparability_key(out)
    return out


MIGRATIONS = {1: _from_v1}


def migrate(result: dict) -> dict:
    """The result in the current schema (a copy when migrated), validated; a clear error for a version this
    decobench does not know."""
    v = result.get("schema_version")
    if v != SCHEMA_VERSION:
        if v not in MIGRATIONS:
            raise ResultValidationError(f"schema_version {v!r}: this decobench reads v{SCHEMA_VERSION} and migrates "
                                        f"v{', v'.join(map(str, MIGRATIONS))}; a newer file needs a newer decobench")
        result = MIGRATIONS[v](result)
    validate(result)
    return result


def load_result(path: str | Path) -> dict:
    p = Path(path)
    try:
        r = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultValidationError(f"{p}: not a readable JSON result file ({exc})") from None
    if not isinstance(r, dict):
        raise ResultValidationError(f"{p}: not a JSON object")
    return migrate(r)
