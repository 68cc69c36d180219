"""``decobench leaderboard`` and ``decobench validate``: the tables from result files, and their checks."""

from __future__ import annotations

import click


def _seeds(value: str) -> list[int]:
    try:
        seeds = sorted({int(s) for s in value.split(",") if s.strip()})
    except ValueError:
        raise click.BadParameter(f"{value!r}: give seeds as integers separated by commas, e.g. 0,1,2") from None
    if not seeds:
        raise click.BadParameter("give at least one seed, e.g. 0,1,2")
    return seeds


@click.command()
@click.option("--runs", default="runs", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="write the Markdown here too")
@click.option("--csv", "csv_out", default=None, type=click.Path(dir_okay=False),
              help="write the tidy table (one record per group, row and metric) here")
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="write the static page here (index.html), its Pareto plots beside it")
@click.option("--seeds", default=None,
              help="the seeds every row declares: a row shows only when all are present (default: the grid's, "
                   "else 0,1,2)")
@click.option("--preset", default=None, help="the grid the board is made from (a suite preset, e.g. embedded): "
                                             "its cells not under RUNS are listed, with why, at the end")
@click.option("--grid", "grid_file", default=None, type=click.Path(dir_okay=False), help="the same, from a TOML grid")
def leaderboard(runs, out, csv_out, html_out, seeds, preset, grid_file):
    """Validate every result.json under RUNS and print the comparison tables: per comparable group, each cell
    the mean and 95 % CI over the declared seeds, rows in privacy-utility Pareto tiers.

    \b
    Example:
      decobench leaderboard --runs leaderboard/results --preset embedded --out leaderboard/embedded.md \\
        --csv leaderboard/embedded.csv --html leaderboard/index.html
    """
    from decobench.results.board import write_board

    grid = None
    if preset or grid_file:
        from pathlib import Path

        from decobench.results.expected import declared_seeds
        from decobench.suite.grid import load_grid

        cells = load_grid(preset, grid_file)
        grid = (cells, preset or Path(grid_file).stem)
    declared = _seeds(seeds) if seeds is not None else (declared_seeds(grid[0]) if grid else [0, 1, 2])
    try:
        text = write_board(runs, declared, out, csv_out, html_out, warn=lambda m: click.echo(m, err=True), grid=grid)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--splits-dir", default=None, type=click.Path(file_okay=False),
              help="the committed splits to check against (default: the checkout's splits/)")
def validate(paths, splits_dir):
    """Check result files (or every result.json under a folder): schema, split and data hashes against the
    committed splits, the comparability key, provenance, DP figures against Opacus's accountant, and no cell
    twice. Every problem is listed; exit 2 when there is one.

    \b
    Example:
      decobench validate leaderboard/results
    """
    from decobench.results.schema import ResultValidationError
    from decobench.results.validate import problems, result_files

    found = problems(list(paths), splits_dir)
    for f, ps in found.items():
        click.echo(f"{f}:", err=True)
        for p in ps:
            click.echo(f"  - {p}", err=True)
    if found:
        raise ResultValidationError(f"{sum(map(len, found.values()))} problem(s) in {len(found)} result file(s), "
                                    f"listed above")
    click.echo(f"{len(result_files(list(paths)))} result file(s) valid")
