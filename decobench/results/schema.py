"""The result-file schema (version 2). ``validate`` reports every problem at once, by field.

v2 (core v2): metrics come from attack plugins, each a record with direction, chance, majority rate
and a CI; runs carry a comparability key, the method's version and hyperparameters, the sensitive
attribute, base-weight hash and resolution. v1 files (before core v2) are not comparable with v2.
Runs with DP-SGD carry a ``dp`` block (ε, δ, accountant, z, q, steps, S, history, what ε covers).
"""

from __future__ import annotations

import jsonschema

SCHEMA_VERSION = 2

_metric = {
    "type": "object",
    "required": ["value", "direction"],
    "properties": {
        "value": {"type": ["number", "null"]},
        "direction": {"enum": ["higher_is_better", "lower_is_better"]},
        "chance": {"type": ["number", "null"]},
        "majority": {"type": "number"},
        "balanced_accuracy": {"type": "number"},
        "ci": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "ci_includes_chance": {"type": "boolean"},
        "ci_includes_majority": {"type": "boolean"},
        "note": {"type": "string"},
        "headline": {"type": "boolean"},       # false: kept in result.json, left out of leaderboard tables
        "unit": {"enum": ["fraction"]},        # rates printed in % (accuracies, which carry "majority", are too)
    },
}
_evaluation = {
    "type": "object",
    "required": ["dataset", "metrics", "reference", "attack_info"],
    "properties": {
        "dataset": {"type": "string"},
        "metrics": {"type": "object", "minProperties": 1, "additionalProperties": _metric},
        "reference": {"type": "object"},
        "attack_info": {"type": "object"},
    },
}
_dp = {
    "type": "object",
    "required": ["epsilon", "delta", "accountant", "noise_multiplier", "sample_rate", "steps", "max_grad_norm",
                 "expected_batch_size", "sampling", "history", "private_parameters", "covers"],
    "properties": {
        "epsilon": {"type": ["number", "null"]},     # null: some step ran without noise (ε = ∞)
        "delta": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "accountant": {"enum": ["prv", "rdp"]},
        "noise_multiplier": {"type": "number", "minimum": 0},
        "sample_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "steps": {"type": "integer", "minimum": 0},
        "max_grad_norm": {"type": "number", "exclusiveMinimum": 0},
        "sampling": {"const": "poisson"},
        "history": {"type": "array", "items": {"type": "array", "minItems": 3, "maxItems": 3}},
        "private_parameters": {"type": "array", "items": {"type": "string"}},
        "covers": {"type": "string"},
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "method", "method_origin", "method_version", "method_params", "setup", "regime",
                 "sensitive", "profile", "prompt_policy", "datasets", "split_hashes", "data_fingerprints", "config",
                 "config_hash", "seed", "base_model", "base_weights", "resolution", "attacks", "decobench_version",
                 "decobench_commit", "packages", "hardware", "stage_seconds", "evaluations", "parameter_counts",
                 "comparability_key"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "method": {"type": "string"}, "method_origin": {"type": "string"}, "method_version": {"type": "string"},
        "method_params": {"type": "object"},
        "setup": {"type": "string"}, "regime": {"enum": ["G", "V+G", "Tr+V+G", "model", "cloak"]},
        "track": {"enum": ["data", "model", "cloak"]},
        "sensitive": {"type": "string"}, "profile": {"type": "string"}, "prompt_policy": {"type": "string"},
        "datasets": {"type": "object", "required": ["train", "evaluate"]},
        "split_hashes": {"type": "object"}, "data_fingerprints": {"type": "object"},
        "config": {"type": "object"}, "config_hash": {"type": "string"},
        "seed": {"type": "integer"},
        "base_model": {"type": "string"}, "base_weights": {"type": "string"}, "resolution": {"type": "integer"},
        "attacks": {"type": "object", "minProperties": 1},
        "decobench_version": {"type": "string"}, "decobench_commit": {"type": "string"},
        "packages": {"type": "object"}, "hardware": {"type": "object"},
        "stage_seconds": {"type": "object", "additionalProperties": {"type": "number"}},
        "evaluations": {"type": "array", "minItems": 1, "items": _evaluation},
        "parameter_counts": {"type": "object"},
        "training": {"type": "object"},
        "comparability_key": {"type": "string"},
        "dp": _dp,
    },
}


class ResultValidationError(ValueError):
    pass


def schema_problems(result: dict) -> list[str]:
    """Every schema problem, by field."""
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(result), key=lambda e: list(map(str, e.path)))
    return [f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors]


def validate(result: dict) -> None:
    problems = schema_problems(result)
    if problems:
        raise ResultValidationError(f"result file fails schema v{SCHEMA_VERSION} ({len(problems)} problems):\n"
                                    + "\n".join(f"  {p}" for p in problems))
