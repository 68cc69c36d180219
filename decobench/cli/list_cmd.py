"""``decobench list``: what is registered, with its origin."""

from __future__ import annotations

import click

from decobench.registry import ALL


@click.command("list")
@click.argument("kind", type=click.Choice(sorted(ALL)))
def list_cmd(kind):
    """List registered plugins of KIND: name, one-line summary, origin.

    \b
    Origin is the built-in module, or package==version for third-party plugins
    registered through the entry-point group decobench.<KIND>.
    Examples:
      decobench list methods
      decobench list datasets
    """
    entries = ALL[kind].entries()
    if not entries:
        click.echo(f"no {kind} registered yet")
        return
    w = max(len(e.name) for e in entries)
    wo = max(len(e.origin) for e in entries)
    for e in entries:
        click.echo(f"{e.name:<{w}}  {e.origin:<{wo}}  {e.summary}")
