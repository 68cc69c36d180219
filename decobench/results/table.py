"""Human-readable tables from result files."""

from __future__ import annotations


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def _fmt(m: dict | None, scale_pct: bool) -> str:
    if m is None or m.get("value") is None:
        return "n/a"
    return pct(m["value"]) if scale_pct else f"{m['value']:.3f}"


def is_accuracy(m: dict) -> bool:
    return "majority" in m


def in_percent(m: dict) -> bool:
    """Accuracies and rates (re-identification, TPR) print in %."""
    return is_accuracy(m) or m.get("unit") == "fraction"


def flags(m: dict) -> str:
    out = []
    if m.get("ci_includes_chance"):
        out.append("CI∋chance")
    if m.get("ci_includes_majority"):
        out.append("CI∋majority")
    return " ".join(out)


def summary_table(result: dict) -> str:
    lines = [f"{result['method']} | setup {result['setup']} | regime {result['regime']} | seed {result['seed']} | "
             f"profile {result['profile']} | sensitive {result['sensitive']} | prompt {result['prompt_policy']} | "
             f"base {result['base_model']} @ {result['resolution']} px"]
    tr = result.get("training")
    if tr:
        lines.append(f"  training: {tr.get('steps')} steps, checkpoint selected at step {tr.get('selected_step')} "
                     f"on {tr.get('select_on')} (eligible from step {tr.get('select_from_step')})")
    dp = result.get("dp")
    if dp:
        eps = "∞ (no noise)" if dp["epsilon"] is None else f"{dp['epsilon']:.3f}"
        lines.append(f"  DP-SGD: ε {eps} at δ {dp['delta']:g} ({dp['accountant']} accountant; z {dp['noise_multiplier']:.4g}, "
                     f"q {dp['sample_rate']:.4g}, {dp['steps']} steps, S {dp['max_grad_norm']:g}, Poisson sampling); "
                     f"covers {dp['covers']}")
    for ev in result["evaluations"]:
        ref = ev["reference"].get("baseline_real", {})
        floor = ev["reference"].get("real_vs_real", {})
        lines.append(f"  on {ev['dataset']}")
        lines.append(f"    {'metric':<34}{'value':>9}{'95% CI':>17}{'bal.acc':>9}{'chance':>8}{'majority':>9}"
                     f"{'Real':>8}  flags")
        for name, m in ev["metrics"].items():
            arrow = "↓" if m["direction"] == "lower_is_better" else "↑"
            if is_accuracy(m):
                ci = f"[{pct(m['ci'][0])}, {pct(m['ci'][1])}]"
                real = ref.get(name, {}).get("value")
                lines.append(f"    {name + ' ' + arrow:<34}{pct(m['value']):>9}{ci:>17}{pct(m['balanced_accuracy']):>9}"
                             f"{pct(m['chance']):>8}{pct(m['majority']):>9}{(pct(real) if real is not None else '-'):>8}"
                             f"  {flags(m)}")
            elif m.get("value") is None:
                lines.append(f"    {name + ' ' + arrow:<34}{'n/a':>9}  {m.get('note', '')}")
            elif in_percent(m):
                ci = f"[{pct(m['ci'][0])}, {pct(m['ci'][1])}]" if "ci" in m else ""
                real = ev["reference"].get("real_source", {}).get(name, {}).get("value")
                lines.append(f"    {name + ' ' + arrow:<34}{pct(m['value']):>9}{ci:>17}{'':>9}"
                             f"{pct(m['chance']) if m.get('chance') is not None else '-':>8}{'':>9}"
                             f"{(pct(real) if real is not None else '-'):>8}"
                             f"  {'CI∋chance' if m.get('ci_includes_chance') else ''}")
            else:
                ci = f"[{m['ci'][0]:.1f}, {m['ci'][1]:.1f}]" if "ci" in m else ""
                fl = floor.get(name, {}).get("value")
                lines.append(f"    {name + ' ' + arrow:<34}{m['value']:>9.2f} {ci:>16}"
                             + (f"   real-vs-real floor {fl:.2f}" if fl is not None else ""))
    secs = result["stage_seconds"]
    lines.append("  wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in secs.items()))
    return "\n".join(lines)
