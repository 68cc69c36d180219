"""Human-readable tables from result files."""

from __future__ import annotations


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def summary_table(result: dict) -> str:
    lines = [f"{result['method']} | setup {result['setup']} | regime {result['regime']} | seed {result['seed']} | "
             f"profile {result['config']['profile']} | base {result['base_model']}"]
    for ev in result["evaluations"]:
        m, real = ev["metrics"], ev["baseline_real"]
        fd_key = next(k for k in m if k == "fid" or k.startswith("fd_"))
        lines.append(f"  on {ev['dataset']} ({ev['released_images']} released, {ev['test_images']} test images)")
        lines.append(f"    {'metric':<22}{'this method':>12}{'Baseline (Real)':>17}{'chance':>9}{'majority':>10}")
        rows = [("privacy_cls_race  ↓", m["privacy_cls_race"]["value"], real["privacy_cls_race"], "race"),
                ("privacy_pt_race   ↓", m["privacy_pt_race"]["value"], None, "race"),
                ("privacy_probe_race↓", m["privacy_probe_race"]["value"], None, "race"),
                ("utility_cls_age   ↑", m["utility_cls_age"]["value"], real["utility_cls_age"], "age"),
                ("utility_cls_gender↑", m["utility_cls_gender"]["value"], real["utility_cls_gender"], "gender")]
        chance = {"race": 0.2, "gender": 0.5, "age": 1 / 9}
        for name, v, r, a in rows:
            lines.append(f"    {name:<22}{_pct(v):>12}{(_pct(r) if r is not None else '-'):>17}"
                         f"{_pct(chance[a]):>9}{_pct(ev['majority_class_rate'][a]):>10}")
        lines.append(f"    {fd_key + ' ↓':<22}{m[fd_key]['value']:>12.3f}")
    secs = result["stage_seconds"]
    lines.append("  wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in secs.items()))
    return "\n".join(lines)
