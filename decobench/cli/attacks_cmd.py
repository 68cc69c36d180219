"""``decobench attacks``: list attacks and run their known-answer calibrations."""

from __future__ import annotations

import click


@click.group()
def attacks():
    """Attacks and evaluators (plugins of the decobench.attacks group)."""


@attacks.command()
@click.argument("names", nargs=-1)
@click.option("--seed", default=0, show_default=True, type=int)
def calibrate(names, seed):
    """Run known-answer calibrations: a planted leak must be found, an absent one must read chance.

    \b
    Exit 1 when any calibration fails. Examples:
      decobench attacks calibrate
      decobench attacks calibrate probe cls
    """
    import torch

    from decobench.registry import attacks as registry

    torch.set_num_threads(max(1, torch.get_num_threads()))
    failed = 0
    for name in names or registry.names():
        for c in registry.get(name).calibrate(seed=seed):
            failed += not c.passed
            click.echo(f"{'PASS' if c.passed else 'FAIL'}  {c.attack:<8} {c.case:<8} {c.metric} {c.value:.4f} "
                       f"CI [{c.ci[0]:.4f}, {c.ci[1]:.4f}]  expected: {c.expect}")
    if failed:
        raise click.ClickException(f"{failed} calibration(s) failed")
