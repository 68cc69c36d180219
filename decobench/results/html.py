"""``leaderboard/index.html``: the board as a static page a person reads in a browser.

One section per comparable group: its heading (and why it is apart, when it is), the Pareto tiers and a
Pareto plot (matplotlib SVG: privacy against utility, each row's mean with its 95 % CIs over seeds), and the
table: every cell carries its value for sorting and a tooltip (the CI over seeds, the attack's own CI over
examples, chance and majority); each row links to its result files. The tables are plain HTML, complete
without JavaScript; a small script adds sorting (click a column head) and filtering (the box on top).
"""

from __future__ import annotations

import hashlib
import html
import io
import os
from pathlib import Path

from decobench.results.aggregate import Cell, Group, groups, is_error
from decobench.results.leaderboard import CELLS_NOTE, _chance, decimals, dp_label, fmt, na_reasons, ref
from decobench.results.pareto import NO_TIERS, Point, axes, by_tier, tiers, unranked

SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.querySelectorAll("tr.method"));
      function key(tr) {
        var td = tr.children[col], v = td.getAttribute("data-value");
        return v === null || v === "" ? null : (isNaN(Number(v)) ? v : Number(v));
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (tr) { body.appendChild(tr); });
    });
  });
});
document.getElementById("filter").addEventListener("input", function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll("table.board tr.method").forEach(function (tr) {
    tr.hidden = q !== "" && tr.children[0].textContent.toLowerCase().indexOf(q) < 0;
  });
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.board { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
table.board th, table.board td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
table.board th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; }
table.board th[aria-sort=ascending]::after { content: " ▲"; }
table.board th[aria-sort=descending]::after { content: " ▼"; }
table.board td:first-child, table.board th:first-child { text-align: left; }
tr.reference td { color: #666; font-style: italic; }
td.chance { color: #888; }
.note { color: #555; font-size: 0.9em; max-width: 70em; }
.apart { background: #fff4e0; padding: 0.3em 0.6em; }
"""


def input_hash(results: list[dict]) -> str:
    """sha256 over the result set: each file's JSON, not where it lies (a clone elsewhere hashes the same),
    in the order of the files' paths."""
    import json

    h = hashlib.sha256()
    for r in sorted(results, key=lambda r: r["_path"]):
        h.update(json.dumps({k: v for k, v in r.items() if k != "_path"}, sort_keys=True).encode())
    return h.hexdigest()


def _slug(g: Group) -> str:
    return f"{g.components['track']}-{g.components['setup']}-{g.components['regime']}-{g.dataset}-{g.key}".replace(
        "+", "p")


def pareto_svg(g: Group, points: list[Point], inputs: str = "") -> str:
    """The group's rows in the privacy-utility plane with their CIs over seeds (deterministic SVG; its
    metadata names the input result set's sha256)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    privacy, utility = axes(g)
    with matplotlib.rc_context({"svg.hashsalt": "decobench", "svg.fonttype": "none", "font.size": 8}):
        fig, ax = plt.subplots(figsize=(5, 3.6))
        kx = 100 if g.specs[privacy].percent else 1  # accuracies and rates in %, SSIM and the like as they are
        ky = 100 if all(g.specs[u].percent for u in utility) else 1
        for p in sorted(points, key=lambda p: p.row.label):
            x, y = kx * p.privacy[0], ky * p.utility[0]
            xerr = None if p.privacy[1] is None else [[x - kx * p.privacy[1]], [kx * p.privacy[2] - x]]
            yerr = None if p.utility[1] is None else [[y - ky * p.utility[1]], [ky * p.utility[2] - y]]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o" if p.tier == 1 else "s", capsize=2,
                        label=f"{p.row.label} (tier {p.tier})")
            ax.annotate(p.row.label, (x, y), textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel(f"{privacy} ({'%, ' if kx == 100 else ''}lower is more private)")
        ax.set_ylabel(f"mean of {', '.join(utility)}" + (" (%)" if ky == 100 else ""))
        ax.set_title("privacy vs utility, 95 % CIs over seeds")
        ax.legend(fontsize=6, loc="best")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None,
                                                  "Description": f"decobench leaderboard, input sha256 {inputs}"})
        plt.close(fig)
    return buf.getvalue()


def _tip(cell: Cell, seeds: list[int]) -> str:
    k = 100 if cell.percent else 1
    if cell.mean is None:
        return f"n/a: {cell.note}" if cell.note else "n/a"
    parts = []
    if cell.lo is not None:
        d = decimals(k * (cell.hi - cell.lo) / 2)
        parts.append(f"95 % CI over seeds {','.join(map(str, seeds))}: [{k * cell.lo:.{d}f}, {k * cell.hi:.{d}f}]")
    if cell.example_half_width is not None:
        d = decimals(k * cell.example_half_width)
        parts.append(f"the attack's own 95 % CI over examples: ± {k * cell.example_half_width:.{d}f} (mean over "
                     f"seeds)")
    if cell.chance is not None:
        parts.append(f"chance {ref(k * cell.chance)}")
    if cell.majority is not None:
        parts.append(f"majority {ref(k * cell.majority)}")
    if cell.includes_chance and is_error(cell.metric, cell.direction, cell.chance):
        parts.append("the CI (seeds, widened by examples) reaches chance, the error of a constant prediction")
    elif cell.includes_chance:
        parts.append("the CI (seeds, widened by examples) holds chance or the majority rate")
    if cell.below_chance:
        parts.append("the whole CI (seeds, widened by examples) lies below chance: a mis-calibrated attack, not "
                     "extra privacy")
    return "; ".join(parts)


def _td(cell: Cell | None, seeds: list[int]) -> str:
    if cell is None:
        return '<td data-value="" title="n/a: the method\'s results report no such metric">n/a</td>'
    value = "" if cell.mean is None else f"{cell.mean:.6g}"
    return f'<td data-value="{value}" title="{html.escape(_tip(cell, seeds))}">{html.escape(fmt(cell))}</td>'


def _group_html(g: Group, board_dir: Path, svg_name: str | None, points: list[Point]) -> str:
    c, esc = g.components, html.escape
    by_row = {id(p.row): p for p in points}
    out = [f'<section class="group" id="{_slug(g)}">',
           f"<h2>{esc(c['track'].capitalize())} track, setup {esc(c['setup'])}, regime {esc(c['regime'])}, "
           f"{esc(g.dataset)}</h2>",
           f'<p class="note">sensitive {esc(c["sensitive"])}, profile {esc(c["profile"])}, '
           f'{esc(g.r0["base_model"])} @ {g.r0["resolution"]} px, comparability key {esc(g.key)}</p>']
    if g.incomparable_with:
        out.append(f'<p class="apart">Not comparable with group {esc(g.incomparable_with)} (differs in '
                   f'{esc(", ".join(g.differs_in))}): neither averaged nor ranked with it.</p>')
    if points:
        tiers_text = "; ".join(f"tier {t}: " + ", ".join(esc(r.label) for r in rows)
                               for t, rows in by_tier(points).items())
        out.append(f'<p class="note">Pareto tiers (a row dominates another only where their CIs separate): '
                   f'{tiers_text}.</p>')
    elif axes(g) and not unranked(g):
        out.append(f'<p class="note">{NO_TIERS}</p>')
    for why, rows in unranked(g).items():
        out.append(f'<p class="note">Not ranked ({esc(why)}): {esc(", ".join(r.label for r in rows))}.</p>')
    if svg_name:
        out.append(f'<img src="{esc(svg_name)}" alt="Pareto plot: privacy against utility with CIs" width="500">')
    cols = g.metrics
    first = g.specs
    arrow = {k: "↓" if first[k].direction == "lower_is_better" else "↑" for k in cols}
    out.append('<table class="board"><thead><tr><th>method</th><th>tier</th><th>seeds</th>'
               + "".join(f"<th>{esc(k)} {arrow[k]}</th>" for k in cols) + "</tr></thead><tbody>")
    out.append('<tr class="reference"><td>chance / majority</td><td></td><td></td>'
               + "".join(f'<td class="chance">{esc(_chance(first[k]))}</td>' for k in cols) + "</tr>")
    for ref in g.references:
        out.append(f'<tr class="reference"><td>{esc(ref.label)}</td><td></td><td>{",".join(map(str, ref.seeds))}</td>'
                   + "".join(_td(ref.cells.get(k), ref.seeds) if k in ref.cells else "<td>—</td>" for k in cols)
                   + "</tr>")
    for row in g.rows:
        if not row.complete:
            continue
        links = " ".join(
            f'<a href="{esc(Path(os.path.relpath(r["_path"], board_dir)).as_posix())}">{r["seed"]}</a>'
            for r in sorted(row.results, key=lambda r: r["seed"]) if r["seed"] in row.declared and "_path" in r)
        tier = by_row[id(row)].tier if id(row) in by_row else ""
        out.append(f'<tr class="method"><td data-value="{esc(row.label)}">{esc(row.label + dp_label(row.dp))}</td>'
                   f'<td data-value="{tier}">{tier}</td><td>{links}</td>'
                   + "".join(_td(row.cells.get(k), row.declared) for k in cols) + "</tr>")
    out.append("</tbody></table>")
    aside = [f"{esc(r.label)}: {esc(r.missing_reason)}" for r in g.rows if not r.complete]
    if aside:
        out.append(f'<p class="note">Not shown (incomplete): {"; ".join(aside)}.</p>')
    reasons = na_reasons(g)
    if reasons:
        out.append('<p class="note">n/a: ' + "; ".join(f"{esc(m)} for {esc(', '.join(rows))}: {esc(why)}"
                                                      for (m, why), rows in reasons.items()) + ".</p>")
    out.append("</section>")
    return "\n".join(out)


def render_html(results: list[dict], board_dir: str | Path, seeds=None, commit: str | None = None,
                tail: str = "") -> dict[str, str]:
    """{file name: content} of the page and its Pareto plots, for ``board_dir`` (links are relative to it);
    ``tail``: a last section (the grid's cells not in the board)."""
    from decobench.results.identity_table import render_identity_html

    board_dir = Path(board_dir)
    files, sections, gs, inputs = {}, [], groups(results, seeds), input_hash(results)
    for g in gs:
        points = tiers(g)
        svg = None
        if points:
            svg = f"pareto-{_slug(g)}.svg"
            files[svg] = pareto_svg(g, points, inputs)
        sections.append(_group_html(g, board_dir, svg, points))
    n = len(results)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>decobench leaderboard</title>
<meta name="decobench-input-sha256" content="{inputs}">
<meta name="decobench-generator-commit" content="{html.escape(commit or "unknown")}">
<style>{STYLE}</style></head>
<body>
<h1>decobench leaderboard</h1>
<p class="note">{n} result files (input sha256 {inputs[:16]}). {html.escape(CELLS_NOTE)} Hover a
cell for its CIs, chance and majority (or why it is n/a); click a column head to sort; the seed numbers link to
the result files. The tidy table of every cell: <a href="embedded.csv">embedded.csv</a>.</p>
<noscript><p class="note">Sorting and filtering need JavaScript; the tables below are complete without it.</p></noscript>
<p><label>Filter rows by method: <input id="filter" type="search" placeholder="e.g. ce_"></label></p>
{chr(10).join(sections)}
{render_identity_html(gs)}
{tail}
<script>{SCRIPT}</script>
</body></html>
"""
    files["index.html"] = page
    return files
