"""Result files -> leaderboard cells: comparable groups, one row per method and hyperparameters, each cell the
mean over the row's declared seeds with a 95 % confidence interval over seeds.

- A group is every result with the same comparability key on the same evaluated dataset. Results that
  share the track, setup, regime and dataset of a larger group but not its key form their own group,
  which says in which key fields it differs; they are never averaged or ranked with it.
- A row lists the seeds it declares (``seeds``, default 0, 1, 2). It gets cells only when every declared
  seed is present; otherwise it is kept aside with the reason (the seeds missing), never half-averaged.
- A cell: mean over seeds, Student-t 95 % CI over seeds (n - 1 degrees of freedom), the mean of the
  attack's own per-seed CI half-widths over examples where the attack gives one, chance and majority
  rate, and whether the CI includes chance (or the majority rate, for accuracies). For that mark the seed
  CI is widened on each side by the examples' CI on that side (√(h_seeds² + h_examples²)): seeds share one
  Test set, so the seed CI alone misses the sampling of the examples (three seeds at 0.52 ± 0.01 whose own
  CIs each hold 0.50 are not evidence of a leak), and a rate near 0 has a short lower side. A utility error
  with a chance level (the error of a constant prediction) is marked when its widened CI reaches that error.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from decobench.results.schema import SCHEMA_VERSION
from decobench.results.table import in_percent, is_accuracy

DEFAULT_SEEDS = (0, 1, 2)
# reference rows every method of a seed shares: (label, key in evaluation["reference"])
REFERENCES = (("Baseline (Real)", "baseline_real"), ("real vs real (floor)", "real_vs_real"),
              ("real sources (unprotected)", "real_source"), ("constant reconstruction (floor)", "constant_floor"))


def key_components(result: dict) -> dict:
    """What must be equal for two results to be compared: every input except the method and the seed."""
    c = result["config"]
    if result.get("track") == "cloak":  # the people, the protocol's settings and the attacks; the surrogate is a
        return {"schema_major": result.get("schema_origin", SCHEMA_VERSION), "setup": result["setup"],  # method param
                "regime": result["regime"], "track": "cloak", "sensitive": result["sensitive"],
                "fingerprints": result["data_fingerprints"], "attacks": result["attacks"], "profile": c["cloak"]["profile"],
                "cloak": {k: v for k, v in c["cloak"].items() if k != "profile"}}
    return {"schema_major": result.get("schema_origin", SCHEMA_VERSION), "setup": result["setup"], "regime": result["regime"],
            "track": result.get("track", "data"), "sensitive": result["sensitive"],
            "split_hashes": result["split_hashes"], "fingerprints": result["data_fingerprints"],
            "base": result["base_model"], "base_weights": result["base_weights"], "resolution": result["resolution"],
            "attacks": result["attacks"], "profile": c["profile"], "prompt_policy": c["train"]["prompt_policy"],
            "eval": c["eval"], "release": c["release"], **({"faces": c["faces"]} if "faces" in c else {}),
            # numerics: bf16 on CUDA is not averaged with fp32 (named only when not fp32: older keys stand)
            **({"precision": result["precision"]} if result.get("precision", "fp32") != "fp32" else {})}


def seed_interval(values: list[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """(mean, lo, hi): the Student-t interval over seeds; no interval from one seed."""
    v = np.asarray(values, float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def is_error(name: str, direction: str, chance: float | None) -> bool:
    """A utility error with a chance level (DPLH's landmark and pose heads: the error of a constant prediction),
    not an attack: lower is better, and it is no better than guessing unless its whole CI lies below chance."""
    return not name.startswith("privacy_") and direction == "lower_is_better" and chance is not None


@dataclass
class Cell:
    metric: str
    direction: str
    n: int
    mean: float | None
    lo: float | None = None
    hi: float | None = None
    example_half_width: float | None = None   # mean over seeds of the attack's own CI half-width (examples)
    chance: float | None = None
    majority: float | None = None
    includes_chance: bool = False               # the CI (seeds, widened by examples) holds chance or majority
    below_chance: bool = False                  # a privacy attack's cell whose whole widened CI lies below chance
    percent: bool = False                       # accuracies and rates print in %
    headline: bool = True
    note: str | None = None                     # why a cell is n/a (the attack's own words)
    example_sides: tuple[float, float] | None = None  # mean over seeds of the attack's CI below / above its value

    @staticmethod
    def of(name: str, records: list[dict]) -> "Cell":
        m0 = records[0]
        vals = [m["value"] for m in records if m.get("value") is not None]
        base = dict(metric=name, direction=m0["direction"], chance=m0.get("chance"), majority=m0.get("majority"),
                    percent=in_percent(m0), headline=m0.get("headline", True))
        if len(vals) < len(records):  # a seed without a value (n/a): no mean over the others
            notes = sorted({m.get("note", "").removeprefix("n/a: ") for m in records if m.get("value") is None})
            return Cell(n=len(vals), mean=None, note="; ".join(n for n in notes if n) or None, **base)
        mean, lo, hi = seed_interval(vals)
        halves = [(m["ci"][1] - m["ci"][0]) / 2 for m in records if m.get("ci")]
        example = float(np.mean(halves)) if len(halves) == len(records) else None
        refs = [r for r in (base["chance"], base["majority"] if is_accuracy(m0) else None) if r is not None]
        low, up = _example_sides(records)
        half = 0.0 if lo is None else (hi - lo) / 2  # seeds and test examples both vary the figure: their widths
        bottom = mean - float(np.hypot(half, low))  # add in quadrature, each side by its own (a rate near 0 has a
        top = mean + float(np.hypot(half, up))      # short lower side); one seed: the attack's own CI
        if is_error(name, base["direction"], base["chance"]):  # no better than a constant prediction unless below it
            includes = top >= base["chance"]
        elif lo is not None:
            includes = any(bottom <= r <= top for r in refs)
        else:  # one seed: the attack's own CI decides, as it says
            includes = bool(m0.get("ci_includes_chance") or m0.get("ci_includes_majority"))
        below = (name.startswith("privacy_") and base["direction"] == "lower_is_better"  # an attack worse than
                 and base["chance"] is not None and top < base["chance"])  # guessing (an error below chance is good)
        return Cell(n=len(vals), mean=mean, lo=lo, hi=hi, includes_chance=includes, below_chance=below,
                    example_half_width=example,
                    example_sides=(low, up) if example is not None else None, **base)


def _example_sides(records: list[dict]) -> tuple[float, float]:
    """Mean over seeds of the attack's own CI below and above its value (0, 0 where a seed has none)."""
    if not all(m.get("ci") for m in records):
        return 0.0, 0.0
    return (float(np.mean([max(0.0, m["value"] - m["ci"][0]) for m in records])),
            float(np.mean([max(0.0, m["ci"][1] - m["value"]) for m in records])))


@dataclass
class Row:
    method: str
    params: dict
    label: str
    seeds: list[int]                 # present
    declared: list[int]
    results: list[dict]
    cells: dict[str, Cell] = field(default_factory=dict)
    dp: dict | None = None           # worst ε over the seeds, δ, and whether the released part is private
    missing_reason: str | None = None

    @property
    def complete(self) -> bool:
        return self.missing_reason is None


@dataclass
class Group:
    key: str
    components: dict
    dataset: str
    rows: list[Row]
    references: list[Row]
    metrics: list[str]               # headline metrics, privacy first, then utility, then the rest
    specs: dict[str, Cell] = field(default_factory=dict)  # per metric: direction, chance, majority, unit (one record)
    incomparable_with: str | None = None   # the key of the larger group it shares track/setup/regime/dataset with
    differs_in: list[str] = field(default_factory=list)

    @property
    def r0(self) -> dict:
        return (self.rows or self.references)[0].results[0]


def _label(method: str, params: dict, siblings: list[dict]) -> str:
    """The method's name, plus the hyperparameters that differ between its rows (when it has several)."""
    diff = sorted(k for k in params if any(o.get(k) != params[k] for o in siblings))
    return method + (f" [{', '.join(f'{k}={params[k]}' for k in diff)}]" if diff else "")


def _dp(results: list[dict]) -> dict | None:
    dps = [r["dp"] for r in results if "dp" in r]
    if not dps:
        return None
    eps = [d["epsilon"] for d in dps]
    return {"epsilon": None if None in eps else max(eps), "delta": max(d["delta"] for d in dps),
            "release_private": all("generator" in d.get("private_players", ["generator"]) for d in dps)}


def recipe(r: dict) -> dict:
    """What tells two rows of one method apart: its hyperparameters, the training recipe (which the
    comparability key leaves to the method: a longer run is another row, never averaged in), and the method's
    code (its version digest and where it comes from: seeds made before and after a change to the method, the
    trainer or the DP code are two rows)."""
    c = r.get("config", {})
    return {**r.get("method_params", {}), **{f"train.{k}": v for k, v in c.get("train", {}).items()},
            **{f"model.{k}": v for k, v in c.get("model", {}).items()},
            "method_version": r.get("method_version"), "method_origin": r.get("method_origin")}


def _rows(pairs: list[tuple[dict, dict]], metrics: list[str], declared) -> list[Row]:
    by_row = defaultdict(list)  # a row per method *and* hyperparameters: an ε sweep is never averaged
    for r, ev in pairs:
        by_row[(r["method"], json.dumps(recipe(r), sort_keys=True))].append((r, ev))
    out = []
    for (method, recipe_json), items in sorted(by_row.items()):
        mine = json.loads(recipe_json)
        params = items[0][0].get("method_params", {})
        siblings = [json.loads(p) for m, p in by_row if m == method and p != recipe_json]
        seeds = sorted(r["seed"] for r, _ in items)
        track = items[0][0].get("track", "data")  # declared per (track, method), or per method, or for every row
        want = sorted(declared.get((track, method), declared.get(method, DEFAULT_SEEDS))
                      if isinstance(declared, dict) else declared)
        row = Row(method, params, _label(method, mine, siblings), seeds, want, [r for r, _ in items],
                  dp=_dp([r for r, _ in items]))
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        lacking = sorted(set(want) - set(seeds))
        if dup:
            row.missing_reason = f"seed(s) {', '.join(map(str, dup))} present twice"
        elif lacking:
            row.missing_reason = f"seed(s) {', '.join(map(str, lacking))} of {', '.join(map(str, want))} not run"
        else:
            chosen = [(r, ev) for r, ev in items if r["seed"] in want]
            row.cells = {k: Cell.of(k, [ev["metrics"][k] for _, ev in chosen])
                         for k in metrics if all(k in ev["metrics"] for _, ev in chosen)}
        out.append(row)
    return out


def _references(pairs: list[tuple[dict, dict]], metrics: list[str]) -> list[Row]:
    out = []
    for label, ref_key in REFERENCES:
        by_seed = {}
        for r, ev in pairs:  # one reference per seed (every method of a seed shares it)
            if ev["reference"].get(ref_key):
                by_seed.setdefault(r["seed"], (r, ev["reference"][ref_key]))
        if not by_seed:
            continue
        row = Row(label, {}, label, sorted(by_seed), sorted(by_seed), [r for r, _ in by_seed.values()])
        for k in metrics:
            found = [ref[k] for _, ref in by_seed.values() if k in ref]
            if found:  # references have no direction of their own: read as a quantity
                row.cells[k] = Cell.of(k, [{**m, "direction": "higher_is_better"} for m in found])
        out.append(row)
    return out


def groups(results: list[dict], seeds: list[int] | dict[str, list[int]] | None = None) -> list[Group]:
    """Every comparable group, ordered by track, setup, regime, dataset; ``seeds``: the seeds every row
    declares, or per method (default 0, 1, 2); a row's cells average exactly those."""
    raw = defaultdict(list)
    for r in results:
        for ev in r["evaluations"]:
            raw[(r["comparability_key"], ev["dataset"])].append((r, ev))
    out = []
    for (key, ds), pairs in raw.items():
        found = {}  # one record per headline metric, one with a value where any has one (n/a records lack majority)
        for _, ev in pairs:
            for k, m in ev["metrics"].items():
                if m.get("headline", True) and (k not in found or found[k].get("value") is None):
                    found[k] = m
        metrics = sorted(found, key=lambda k: (not k.startswith("privacy_"), not k.startswith("utility_"), k))
        declared = DEFAULT_SEEDS if seeds is None else seeds
        out.append(Group(key, key_components(pairs[0][0]), ds, _rows(pairs, metrics, declared),
                         _references(pairs, metrics), metrics, {k: Cell.of(k, [found[k]]) for k in metrics}))
    by_place = defaultdict(list)
    for g in out:
        c = g.components
        by_place[(c["track"], c["setup"], c["regime"], g.dataset)].append(g)
    for same in by_place.values():  # the group with the most results is the reference; the others say why not
        same.sort(key=lambda g: (-sum(len(r.results) for r in g.rows), g.key))
        for g in same[1:]:
            g.incomparable_with = same[0].key
            ref = same[0].components  # a field one key has and the other lacks (faces, precision) differs too
            g.differs_in = sorted(k for k in {*g.components, *ref} if g.components.get(k) != ref.get(k))
    order = {"data": 0, "model": 1, "cloak": 2}  # the main table first
    out.sort(key=lambda g: (order.get(g.components["track"], 9), g.components["track"], g.components["setup"], g.components["regime"], g.dataset,
                            g.incomparable_with is not None, g.key))
    return out


def tidy(gs: list[Group]) -> list[dict]:
    """One record per group, row and metric (the CSV beside the board; loadable in pandas)."""
    out = []
    for g in gs:
        c = g.components
        for kind, rows in (("method", g.rows), ("reference", g.references)):
            for row in rows:
                for k, cell in row.cells.items():
                    out.append({"track": c["track"], "setup": c["setup"], "regime": c["regime"], "dataset": g.dataset,
                                "sensitive": c["sensitive"], "profile": c["profile"], "key": g.key,
                                "incomparable_with": g.incomparable_with, "kind": kind, "row": row.label,
                                "method": row.method, "params": json.dumps(row.params, sort_keys=True),
                                "seeds": ",".join(map(str, row.seeds)), "metric": k, "direction": cell.direction,
                                "n": cell.n, "mean": cell.mean, "ci_lo": cell.lo, "ci_hi": cell.hi,
                                "example_ci_half_width": cell.example_half_width,
                                "example_ci_below": (cell.example_sides or (None, None))[0],  # with ci_lo, ci_hi:
                                "example_ci_above": (cell.example_sides or (None, None))[1],  # the ° rule again
                                "chance": cell.chance,
                                "majority": cell.majority, "ci_includes_chance": cell.includes_chance,
                                "ci_below_chance": cell.below_chance,
                                "epsilon": (row.dp or {}).get("epsilon"), "delta": (row.dp or {}).get("delta"),
                                "note": cell.note})  # why an n/a cell (no mean) has none
    return out
