"""The GA-OPOM paper's Table 1 layout from cloak-track result files: protection success (%) per target.

Rows: surrogate x method; columns: each target's Top-1 / Top-5 protection success (1 - hit rate) and the
average over the black-box targets (every target but the surrogate; the white-box column is marked *).
Each cell: mean over the declared seeds with the Student-t 95 % half-width; rows missing a seed are listed
apart. The unprotected rate (clean probes) heads each column.

Under each table, the paper's two claims as paired differences of black-box average Top-1 protection
(GA minus its non-GA counterpart; OPOM-ConvexHull minus FI-UAP): the same people and the same seed on both
sides, so the difference removes the people effect; mean ± Student-t 95 % half-width over seeds per
surrogate, and over every (surrogate, seed) pair pooled.
"""

from __future__ import annotations

from collections import defaultdict

from decobench.results.aggregate import seed_interval

METHOD_ORDER = ("fi_uap", "ga_fi_uap", "fi_uap_plus", "opom_affine", "opom_convex", "ga_opom_convex")
CLAIMS = (("ga_fi_uap", "fi_uap"), ("ga_opom_convex", "opom_convex"), ("opom_convex", "fi_uap"))


def _cell(values: list[float]) -> str:
    mean, lo, hi = seed_interval([100 * v for v in values])
    return f"{mean:.1f}" + (f" ± {(hi - lo) / 2:.1f}" if lo is not None else "")


def table1(results: list[dict], seeds: list[int]) -> str:
    cloaks = [r for r in results if r.get("track") == "cloak"]
    if not cloaks:
        return "no cloak-track results"
    by_key = defaultdict(list)
    for r in cloaks:
        by_key[r["comparability_key"]].append(r)
    out = []
    for key, rs in by_key.items():
        info = rs[0]["evaluations"][0]["attack_info"]["fr_protection"]
        targets = list(info["targets"])
        rows = defaultdict(dict)
        for r in rs:
            rows[(r["method_params"]["surrogate"], r["method"], _extra(r))][r["seed"]] = r
        pc = rs[0]["parameter_counts"]
        out.append(f"### Protection success (%), {pc['people']} people x 20 queries, gallery 1 mate + "
                   f"{pc['distractors']:,} distractors, profile {rs[0]['profile']} (key {key}); seeds "
                   f"{', '.join(map(str, seeds))}; * white-box\n")
        head = ["surrogate", "method"] + [f"{t} top1/top5" for t in targets] + ["black-box avg top1", "avg top5"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        ref = rs[0]["evaluations"][0]["reference"]["real_source"]
        unprot = [f"{100 * (1 - ref[f'privacy_fr_top1_{t}']['value']):.1f} / "
                  f"{100 * (1 - ref[f'privacy_fr_top5_{t}']['value']):.1f}" for t in targets]
        out.append("| (none) | unprotected | " + " | ".join(unprot) + " | | |")
        incomplete = []
        order = {m: i for i, m in enumerate(METHOD_ORDER)}
        for (sur, method, extra), by_seed in sorted(rows.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99),
                                                                                    kv[0][2])):
            if sorted(by_seed) != sorted(seeds):
                incomplete.append(f"{sur} / {method}{extra}: seeds {sorted(by_seed)}")
                continue
            runs = [by_seed[s] for s in seeds]

            def prot(r, name):
                return 1 - r["evaluations"][0]["metrics"][name]["value"]
            cells = [f"{_cell([prot(r, f'privacy_fr_top1_{t}') for r in runs])} / "
                     f"{_cell([prot(r, f'privacy_fr_top5_{t}') for r in runs])}" + (" *" if t == sur else "")
                     for t in targets]
            cells += [_cell([prot(r, "privacy_fr_top1_blackbox") for r in runs]),
                      _cell([prot(r, "privacy_fr_top5_blackbox") for r in runs])]
            out.append(f"| {sur} | {method}{extra} | " + " | ".join(cells) + " |")
        if incomplete:
            out.append("\nIncomplete (not shown): " + "; ".join(incomplete))
        out += _claims(rows, seeds)
        out.append("")
    return "\n".join(out)


def _claims(rows: dict, seeds: list[int]) -> list[str]:
    """Paired (same surrogate, same seed) differences of black-box average Top-1 protection, in points."""
    def bb(r):
        return 100 * (1 - r["evaluations"][0]["metrics"]["privacy_fr_top1_blackbox"]["value"])
    lines = []
    for a, b in CLAIMS:
        per_sur, pooled = [], []
        for sur in sorted({k[0] for k in rows}):
            ra, rb = rows.get((sur, a, "")), rows.get((sur, b, ""))
            if not ra or not rb or not all(s in ra and s in rb for s in seeds):
                continue
            d = [bb(ra[s]) - bb(rb[s]) for s in seeds]
            pooled += d
            per_sur.append(f"{sur} {_diff(d)}")
        if per_sur:
            lines.append(f"- {a} − {b}: " + "; ".join(per_sur) + f"; pooled {_diff(pooled)} "
                         f"(positive in {sum(x > 0 for x in pooled)} of {len(pooled)} pairs)")
    if lines:
        lines.insert(0, "\nPaired differences, black-box average Top-1 protection (points; same people and seed "
                        "on both sides; mean ± 95 % half-width over seeds):\n")
    return lines


def _diff(d: list[float]) -> str:
    mean, lo, hi = seed_interval(d)
    return f"{mean:+.1f}" + (f" ± {(hi - lo) / 2:.1f}" if lo is not None else "")


def _extra(r: dict) -> str:
    """Settings that differ from the defaults (momentum, DFANet, eps, ...), shown beside the method."""
    from decobench.methods.cloaks import CloakParams

    default = CloakParams().model_dump()
    diff = {k: v for k, v in r["method_params"].items() if k not in ("surrogate", "batch_identities") and default.get(k) != v}
    return (" [" + ", ".join(f"{k}={v}" for k, v in sorted(diff.items())) + "]") if diff else ""
