"""The result-file schema (version 1). ``validate`` reports every problem at once, by field."""

from __future__ import annotations

import jsonschema

SCHEMA_VERSION = 1

_metric = {
    "type": "object",
    "required": ["value", "direction"],
    "properties": {
        "value": {"type": ["number", "null"]},
        "direction": {"enum": ["higher_is_better", "lower_is_better"]},
        "chance": {"type": ["number", "null"]},
        "note": {"type": "string"},
    },
}
_evaluation = {
    "type": "object",
    "required": ["dataset", "metrics", "baseline_real"],
    "properties": {
        "dataset": {"type": "string"},
        "released_images": {"type": "integer"},
        "test_images": {"type": "integer"},
        "metrics": {
            "type": "object",
            "required": ["privacy_cls_race", "privacy_pt_race", "privacy_probe_race", "utility_cls_age",
                         "utility_cls_gender"],
            "properties": {k: _metric for k in ("privacy_cls_race", "privacy_pt_race", "privacy_probe_race",
                                                 "utility_cls_age", "utility_cls_gender")},
            "patternProperties": {"^(fid|fd_[a-z0-9_]+)$": _metric},
            "additionalProperties": False,
        },
        "baseline_real": {"type": "object",
                          "required": ["privacy_cls_race", "utility_cls_age", "utility_cls_gender"]},
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "method", "method_origin", "setup", "regime", "datasets", "split_hashes",
                 "config", "config_hash", "seed", "decobench_version", "decobench_commit", "packages",
                 "hardware", "stage_seconds", "evaluations", "parameter_counts"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "method": {"type": "string"}, "method_origin": {"type": "string"},
        "setup": {"enum": ["A", "B", "C"]}, "regime": {"enum": ["G", "V+G", "Tr+V+G"]},
        "datasets": {"type": "object", "required": ["train", "evaluate"]},
        "split_hashes": {"type": "object"},
        "config": {"type": "object"}, "config_hash": {"type": "string"},
        "seed": {"type": "integer"},
        "base_model": {"type": "string"},
        "decobench_version": {"type": "string"}, "decobench_commit": {"type": "string"},
        "packages": {"type": "object"}, "hardware": {"type": "object"},
        "stage_seconds": {"type": "object", "additionalProperties": {"type": "number"}},
        "evaluations": {"type": "array", "minItems": 1, "items": _evaluation},
        "parameter_counts": {"type": "object"},
        "training": {"type": "object"},
    },
}


class ResultValidationError(ValueError):
    pass


def validate(result: dict) -> None:
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(result), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors]
        raise ResultValidationError(f"result file fails schema v{SCHEMA_VERSION} ({len(errors)} problems):\n"
                                    + "\n".join(lines))
