"""``decobench cloaks table``: the GA-OPOM paper's Table 1 from cloak-track result files."""

from __future__ import annotations

import click

from decobench.cli.board_cmd import _seeds


@click.group()
def cloaks():
    """Privacy cloaks (the cloak track): tables in the papers' layouts.

    \b
    Example:
      decobench cloaks table --runs runs-cloak --seeds 0,1,2 --out leaderboard/cloaks.md
    """


@cloaks.command()
@click.option("--runs", default="runs", show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--seeds", default="0,1,2", show_default=True, help="the seeds every row declares")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="write the Markdown here too")
def table(runs, seeds, out):
    """Protection success (%) per surrogate x method and target, Top-1 / Top-5, mean ± 95 % CI over seeds."""
    from decobench.io import atomic_write_text
    from decobench.results.cloak_table import table1
    from decobench.results.leaderboard import collect

    text = table1(collect(runs, warn=lambda m: click.echo(m, err=True)), _seeds(seeds))
    click.echo(text)
    if out:
        atomic_write_text(out, text)
