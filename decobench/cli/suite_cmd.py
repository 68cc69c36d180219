"""``decobench suite plan|run``: a grid of runs, resumable, sharded across any scheduler."""

from __future__ import annotations

import click

GRID_OPTIONS = [
    click.option("--preset", default=None, help="a named grid: embedded, paper, trvg, frontal, cloaks, quick"),
    click.option("--grid", "grid_file", default=None, type=click.Path(dir_okay=False),
                 help="a TOML grid of [[block]] tables (see decobench/suite/grid.py)"),
    click.option("--shard", default=None, metavar="K/N", help="run only the K-th of N disjoint shards of the grid"),
    click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
                 help="result folder shared by every shard (stages computed once across them)"),
]


WHERE_OPTIONS = [  # what the cells run on: it names their folders where it is not the embedded default on CPU
    click.option("--base", "base_name", default="tiny-synthface", show_default=True,
                 type=click.Choice(["tiny-synthface", "sd15"])),
    click.option("--base-path", type=click.Path(), default=None, help="local diffusers folder of the base model"),
    click.option("--data-root", type=click.Path(), default=None, help="folder holding fairface/ and utkface/"),
    click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda"),
]


def where_options(f):
    for opt in reversed(WHERE_OPTIONS):
        f = opt(f)
    return f


def _run_kwargs(base_name, base_path, data_root, device) -> dict:
    """What the cells run on, as run_benchmark takes it (and as it names their folders)."""
    return {"base_name": base_name, "base_path": base_path, "data_root": data_root, "device": device}


def parse_duration(text: str) -> float:
    """Seconds from 5400, 90m, 2h30m or 1h15m30s; a clear error otherwise."""
    import re

    from decobench.run.config import ConfigError

    t = (text or "").strip().lower()
    m = re.fullmatch(r"(\d+)", t) or re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", t)
    if not t or not m:
        raise ConfigError(f"--time-limit {text!r} is not a duration: give seconds (5400) or hours, minutes and "
                          f"seconds (2h30m, 90m, 1h15m30s)")
    parts = [int(g) if g else 0 for g in m.groups()]
    seconds = parts[0] if len(parts) == 1 else parts[0] * 3600 + parts[1] * 60 + parts[2]
    if seconds <= 0:
        raise ConfigError(f"--time-limit {text!r}: the time limit must be positive")
    return float(seconds)


def grid_options(f):
    for opt in reversed(GRID_OPTIONS):
        f = opt(f)
    return f


def _cells(preset, grid_file, shard):
    from decobench.suite.grid import load_grid, parse_shard
    from decobench.suite.grid import shard as take

    cells = load_grid(preset, grid_file)
    k, n = parse_shard(shard)
    return cells, take(cells, k, n)


@click.group()
def suite():
    """Run grids of methods x setups x regimes x seeds: resumable, shardable, one board at the end.

    \b
    Examples:
      decobench suite plan --preset embedded
      decobench suite run --preset quick --out runs-quick --board runs-quick/board
      decobench suite run --preset embedded --out runs --shard 3/8
    """


@suite.command()
@grid_options
@where_options
@click.option("--commands", is_flag=True, help="print each cell's decobench run line instead of the table")
def plan(preset, grid_file, shard, out, base_name, base_path, data_root, device, commands):
    """List the grid's cells (this shard's) with their state under --out: done, failed, stale (made by other
    method code or attack versions: run again) or todo (give the suite run's --base, --data-root and --device:
    they name the cells' folders)."""
    import shlex

    from decobench.suite.run import status

    cells, mine = _cells(preset, grid_file, shard)
    kw = _run_kwargs(base_name, base_path, data_root, device)
    states = {c.id: status(c, out, kw) for c in mine}
    if commands:  # the same folders as the suite run: its base, data and device ride along
        extra = "".join(f" {flag} {shlex.quote(str(v))}" for flag, v, default in (
            ("--base", base_name, "tiny-synthface"), ("--base-path", base_path, None),
            ("--data-root", data_root, None), ("--device", device, "auto")) if v != default)
        for c in mine:
            click.echo(c.command() + extra + f" --out {shlex.quote(str(out))}")
        return
    for c in mine:
        click.echo(f"{states[c.id]:6s} {c.id}")
    counts = {s: list(states.values()).count(s) for s in ("done", "failed", "stale", "todo")}
    click.echo(f"{len(mine)} of {len(cells)} cells in this shard: {counts['done']} done, {counts['failed']} failed, "
               f"{counts['stale']} stale (to run again), {counts['todo']} to run")


@suite.command(name="run")
@grid_options
@where_options
@click.option("--board", default=None, type=click.Path(file_okay=False),
              help="when every cell is done, write the board here: NAME.md tables, NAME.csv, index.html and its "
                   "plots (NAME: the preset, or the grid file's stem)")
@click.option("--no-wait", "no_wait", is_flag=True,
              help="exit once no free cell is left instead of waiting for the cells other workers hold (to chain "
                   "grids in one worker; a cell whose worker dies is then left to a later run)")
@click.option("--time-limit", "time_limit", default=None, metavar="DURATION",
              help="the wall time this worker has (a job's limit), e.g. 2h30m, 90m or 5400: it starts no cell that "
                   "cells of its kind already finished say would not end in the time left, and waits for none")
def run_cmd(preset, grid_file, shard, out, base_name, base_path, data_root, device, board, no_wait, time_limit):
    """Run the cells of the grid (this shard's) that are not done yet; a failed cell is recorded and the rest go
    on; exit 1 when a cell failed."""
    from pathlib import Path

    from decobench.suite.run import run_suite

    cells, mine = _cells(preset, grid_file, shard)
    kw = _run_kwargs(base_name, base_path, data_root, device)
    limit = None if time_limit is None else parse_duration(time_limit)
    outcome = run_suite(mine, out, kw, echo=click.echo, wait=not no_wait, time_limit=limit)
    click.echo(f"suite: ran {len(outcome.ran)}, {len(outcome.skipped)} done before, {len(outcome.failed)} failed"
               + (f", {len(outcome.left)} left to the workers running them" if outcome.left else "")
               + (f", {len(outcome.not_started)} not started (would not finish within --time-limit)"
                  if outcome.not_started else ""))
    from decobench.suite.run import cell_stem

    by_id = {c.id: c for c in mine}
    for cid, line in outcome.failed.items():
        log = Path(out) / ".suite" / "logs" / f"{cell_stem(by_id[cid], kw)}.log"
        click.echo(f"  failed {cid}: {line} (log: {log})", err=True)
    if board and not outcome.failed:
        from decobench.suite.run import status
        from decobench.results.board import write_board

        left = [c for c in cells if status(c, out, kw) != "done"]
        if left:
            click.echo(f"board not written: {len(left)} cell(s) of the grid are not done (other shards?); "
                       f"rerun with --board once they are", err=True)
        else:
            from decobench.results.expected import declared_seeds

            Path(board).mkdir(parents=True, exist_ok=True)
            name = preset or Path(grid_file).stem
            write_board(out, declared_seeds(cells), Path(board) / f"{name}.md", Path(board) / f"{name}.csv",
                        Path(board) / "index.html", warn=lambda m: click.echo(m, err=True), grid=(cells, name))
            click.echo(f"wrote the board to {board}")
    if outcome.failed:
        raise click.exceptions.Exit(1)
