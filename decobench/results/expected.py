"""The grid's cells a board does not hold yet, with the reason: not run, failed (and how), or stale (made by
other method code or another attack version: the board would not average it with the code at hand's).

A board made from a grid (``decobench leaderboard --preset NAME`` / ``--grid FILE``, or the suite's
``--board``) ends with them, so a partial board says what is missing rather than leaving it unseen: a whole
setup and regime with no result has no group of its own to carry the reason.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path

def _labels(cells) -> dict:
    """Per cell: the method, plus the grid settings that tell it from the method's other cells (a sweep)."""
    by_method = defaultdict(set)
    for c in cells:
        by_method[(c.track, c.method)].add(c.sets)
    out = {}
    for c in cells:
        others = by_method[(c.track, c.method)]
        diff = [f"{k}={v}" for k, v in c.sets if any(dict(o).get(k) != v for o in others)]
        out[c] = c.method + (f" [{', '.join(diff)}]" if diff else "")
    return out


def _state(cell, runs: Path) -> tuple[str, str]:
    """(state, why) of a grid cell under ``runs`` whatever it ran on: its folder with any where-tag (sd15, real
    data, CUDA; identity.run_folder) holds a result the code at hand makes (done), one it would not (stale), or
    none; then the last failure recorded for the cell, if any (failed), else not run."""
    from decobench.suite.run import cell_dir, stale, suite_dir

    d = cell_dir(cell, runs)
    found = sorted(d.parent.parent.glob(f"{d.parent.name}*/{d.name}/result.json"))
    if found:
        whys = [stale(p) for p in found]
        return ("done", "") if None in whys else ("stale", f"stale: {whys[0]}")
    failures = sorted((suite_dir(runs) / "failed").glob(f"{cell.id}*.json"), key=lambda p: p.stat().st_mtime)
    if failures:
        return "failed", f"failed: {json.loads(failures[-1].read_text())['error']}"
    return "todo", "not run"


def missing(cells, runs: str | Path) -> list[dict]:
    """One record per place, method and state: the seeds of the grid's cells under ``runs`` that the board does
    not hold as the code at hand makes them (on any base, data or device)."""
    labels, rows = _labels(cells), defaultdict(list)
    for c in cells:
        state, why = _state(c, Path(runs))
        if state == "done":
            continue
        rows[(c.track, c.setup, c.regime, labels[c], why)].append(c.seed)
    order = {"data": 0, "model": 1, "cloak": 2}
    return [{"track": t, "setup": s, "regime": r, "method": m, "seeds": sorted(seeds), "state": why}
            for (t, s, r, m, why), seeds in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0]))]


def _summary(cells, rows: list[dict], name: str, code=lambda t: f"`{t}`") -> str:
    n_missing = sum(len(r["seeds"]) for r in rows)
    count = {k: sum(len(r["seeds"]) for r in rows if r["state"].startswith(k)) for k in ("not run", "failed", "stale")}
    stale = " (results from other method code or attack versions)" if count["stale"] else ""
    return (f"{n_missing} of the {len(cells)} cells of grid {name} are not in this board as the code at hand makes "
            f"them: {count['not run']} not run, {count['failed']} failed, {count['stale']} stale{stale}; "
            f"{code('decobench suite plan')} lists them, {code('decobench suite run')} makes them.")


def render_missing(cells, rows: list[dict], name: str) -> str:
    """Markdown: the section that closes a board made from a grid (``rows``: :func:`missing`'s; empty when every
    cell is done)."""
    if not rows:
        return ""
    out = [f"### Not in this board yet (grid {name})", "", _summary(cells, rows, name), "",
           "| track | setup | regime | method | seeds | state |", "|---|---|---|---|---|---|"]
    out += [f"| {r['track']} | {r['setup']} | {r['regime']} | {r['method']} | {', '.join(map(str, r['seeds']))} | "
            f"{r['state']} |" for r in rows]
    return "\n".join(out) + "\n"


def render_missing_html(cells, rows: list[dict], name: str) -> str:
    esc = html.escape
    if not rows:
        return ""
    body = "".join(f"<tr><td>{esc(r['track'])}</td><td>{esc(r['setup'])}</td><td>{esc(r['regime'])}</td>"
                   f"<td>{esc(r['method'])}</td><td>{esc(', '.join(map(str, r['seeds'])))}</td>"
                   f"<td>{esc(r['state'])}</td></tr>" for r in rows)
    return (f'<section class="group" id="not-in-board"><h2>Not in this board yet (grid {esc(name)})</h2>'
            f'<p class="note">{_summary(cells, rows, esc(name), lambda t: f"<code>{esc(t)}</code>")}</p>'
            f'<table class="missing"><thead><tr><th>track</th><th>setup</th><th>regime</th><th>method</th>'
            f'<th>seeds</th><th>state</th></tr></thead><tbody>{body}</tbody></table></section>')


def declared_seeds(cells) -> dict[tuple[str, str], list[int]]:
    """The seeds the grid declares per track and method: what a row of that method must hold to be shown."""
    out = defaultdict(set)
    for c in cells:
        out[(c.track, c.method)].add(c.seed)
    return {k: sorted(s) for k, s in out.items()}
