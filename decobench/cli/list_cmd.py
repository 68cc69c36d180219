"""``decobench list``: what is registered, with its origin."""

from __future__ import annotations

import click

from decobench.registry import ALL


@click.command("list")
@click.argument("kind", type=click.Choice(sorted(ALL)))
def list_cmd(kind):
    """List registered plugins of KIND: name, one-line summary, origin.

    \b
    Methods also show their release tracks (data, model, cloak) and "DP" when they
    train under DP-SGD; attacks show the release kinds they accept.
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
    tags = {e.name: _tags(kind, e.obj) for e in entries}
    wt = max(len(t) for t in tags.values())
    for e in entries:
        click.echo(f"{e.name:<{w}}  " + (f"{tags[e.name]:<{wt}}  " if wt else "") + f"{e.origin:<{wo}}  {e.summary}")


def _tags(kind: str, obj) -> str:
    if kind == "methods":
        return "[" + ",".join(obj.tracks) + "]" + (" DP" if obj.trains_privately() else "")
    if kind == "attacks":
        return "[" + ",".join(obj.accepts) + "]"
    return ""
