"""Write the board's files (Markdown, tidy CSV, static page with its plots) from a folder of result files."""

from __future__ import annotations

from pathlib import Path


def provenance_line(results: list[dict], commit: str) -> str:
    """The Markdown's first line: the result set's hash and the generating commit (the page carries both too)."""
    from decobench.results.html import input_hash

    return (f"<!-- decobench leaderboard from {len(results)} result files, input sha256 {input_hash(results)}, "
            f"generator commit {commit} -->")


def tidy_frame(results: list[dict], seeds, commit: str):
    """The tidy table of every cell, each record naming the input set's sha256 and the generating commit."""
    import pandas as pd

    from decobench.results.aggregate import groups, tidy
    from decobench.results.html import input_hash

    df = pd.DataFrame(tidy(groups(results, seeds)))
    df["input_sha256"], df["generator_commit"] = input_hash(results), commit
    return df


def board_markdown(results: list[dict], seeds, tail: str = "") -> str:
    """The tables, closed by ``tail`` (the grid's cells not in the board, expected.render_missing)."""
    from decobench.results.leaderboard import render

    return render(results, seeds) + ("\n" + tail if tail else "")


def write_board(runs: str | Path, seeds, md=None, csv=None, html=None, warn=print, grid=None) -> str:
    """Validate and aggregate every result.json under ``runs``; write the files asked for (atomically);
    return the Markdown. ``seeds``: declared seeds (a list, or per method); ``grid``: (cells, name) of the grid
    the board is made from, whose cells not done (on any base, data or device) are listed at its end. Raises
    ``FileNotFoundError`` when there is no result file."""
    from decobench.io import atomic_write_text
    from decobench.results.build import commit
    from decobench.results.expected import missing, render_missing, render_missing_html
    from decobench.results.leaderboard import collect

    made_by = commit()  # before the first file is written: the tree is clean or not for all of them alike
    results = collect(runs, warn=warn)
    if not results:
        raise FileNotFoundError(f"no result.json under {runs}")
    lacking = missing(grid[0], runs) if grid else []  # read once: every cell's folder and result under runs
    text = board_markdown(results, seeds, render_missing(grid[0], lacking, grid[1]) if grid else "")
    if md:
        atomic_write_text(md, provenance_line(results, made_by) + "\n\n" + text)
    if csv:
        atomic_write_text(csv, tidy_frame(results, seeds, made_by).to_csv(index=False))
    if html:
        from decobench.results.html import render_html

        folder = Path(html).parent
        tail = render_missing_html(grid[0], lacking, grid[1]) if grid else ""
        for name, content in render_html(results, folder, seeds, made_by, tail).items():
            atomic_write_text(folder / (Path(html).name if name == "index.html" else name), content)
    return text
