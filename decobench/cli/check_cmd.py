"""``decobench check``: what a researcher runs before submitting a method or an attack."""

from __future__ import annotations

import click


def _report(kind: str, name: str, problems: list[str]) -> None:
    if problems:
        for p in problems:
            click.echo(f"  - {p}", err=True)
        raise click.ClickException(f"{kind} {name!r}: {len(problems)} problem(s)")
    click.echo(f"{kind} {name!r}: every check passed")


@click.group()
def check():
    """Check a method or attack plugin against the interface; list every problem at once."""


@check.command("method")
@click.argument("name")
@click.option("--no-run", is_flag=True, help="only the interface checks, no quick end-to-end run")
def check_method_cmd(name, no_run):
    """Interface checks (construction, players, optimiser groups, phases, loss terms, gradients,
    adversary), then a quick-profile run end to end.

    \b
    Example:
      decobench check method ce_mask
    """
    import torch

    from decobench.methods.checks import check_method

    torch.set_num_threads(max(1, torch.get_num_threads()))
    _report("method", name, check_method(name, run=not no_run))


@check.command("attack")
@click.argument("name")
def check_attack_cmd(name):
    """Interface checks, the known-answer calibration, and a run on a small release.

    \b
    Example:
      decobench check attack probe
    """
    from decobench.attacks.checks import check_attack

    _report("attack", name, check_attack(name))
