"""Entry point: ``decobench <command>``. Known failures print one clear line and exit 2."""

from __future__ import annotations

import sys

import click

from decobench import __version__
from decobench.cli.attacks_cmd import attacks
from decobench.cli.base_cmd import base
from decobench.cli.board_cmd import leaderboard, validate
from decobench.cli.check_cmd import check
from decobench.cli.cloaks_cmd import cloaks
from decobench.cli.data_cmd import data
from decobench.cli.fr_cmd import fr
from decobench.cli.list_cmd import list_cmd
from decobench.cli.run_cmd import run
from decobench.cli.splits_cmd import splits
from decobench.cli.suite_cmd import suite
from decobench.data.base import DatasetError
from decobench.registry import RegistryError
from decobench.models.base import BaseModelError
from decobench.results.schema import ResultValidationError
from decobench.run.config import ConfigError
from decobench.run.train import MethodInterfaceError, NonFiniteLossError
from decobench.splits import SplitError

# errors that come from what the user gave; anything else is a bug and keeps its traceback
USER_ERRORS = (DatasetError, RegistryError, SplitError, BaseModelError, ConfigError, MethodInterfaceError,
               NonFiniteLossError, ResultValidationError)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="decobench")
def cli():
    """decobench: benchmark privacy-preserving face-data release (DECO-Bench style).

    \b
    Examples:
      decobench run --method ce_mask --setup A
      decobench list methods
      decobench data summary --dataset synthfaces-a
      decobench data preview --dataset synthfaces-a --out preview.png
      decobench splits verify --dataset synthfaces-a
      decobench data summary --dataset fairface --root ~/data/fairface --json
    """


cli.add_command(list_cmd)
cli.add_command(data)
cli.add_command(splits)
cli.add_command(run)
cli.add_command(base)
cli.add_command(attacks)
cli.add_command(check)
cli.add_command(fr)
cli.add_command(leaderboard)
cli.add_command(validate)
cli.add_command(suite)
cli.add_command(cloaks)


def main(argv=None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="decobench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except USER_ERRORS as exc:
        click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        return 2
    return rv if isinstance(rv, int) else 0  # a command's click Exit(code) comes back as its return value


if __name__ == "__main__":
    sys.exit(main())
