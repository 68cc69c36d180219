"""``decobench run``: the main job."""

from __future__ import annotations

import click

from decobench.run.config import PROFILES
from decobench.setups import REGIMES


def _parse_set(values) -> dict:
    out = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"--set expects KEY=VALUE, got {v!r}")
        k, raw = v.split("=", 1)
        for cast in (int, float):
            try:
                out[k] = cast(raw)
                break
            except ValueError:
                continue
        else:
            out[k] = raw
    return out


@click.command()
@click.option("--method", required=True, help="decoupling method (decobench list methods)")
@click.option("--setup", required=True, help="A, B or C (decobench list setups)")
@click.option("--regime", default="G", show_default=True, type=click.Choice(list(REGIMES)))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--profile", default="embedded", show_default=True, type=click.Choice(list(PROFILES)))
@click.option("--base", "base_name", default="tiny-synthface", show_default=True,
              type=click.Choice(["tiny-synthface", "sd15"]))
@click.option("--base-path", type=click.Path(), default=None, help="local diffusers folder of the base model")
@click.option("--data-root", type=click.Path(), default=None,
              help="folder holding fairface/ and utkface/ (real datasets instead of SynthFaces)")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.option("--prompt-policy", type=click.Choice(["with_race", "without_race"]), default=None,
              help="keep race in the prompt (paper) or leave it out")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a training config value")
def run(method, setup, regime, seed, profile, base_name, base_path, data_root, out, device, prompt_policy, sets):
    """Train a decoupling method, release a synthetic split, evaluate it, write result.json.

    \b
    Examples:
      decobench run --method ce_mask --setup A
      decobench run --method metric --setup C --profile quick --seed 1
      decobench run --method ce --setup B --regime V+G
      decobench run --method ce --setup A --base sd15 --base-path ~/sd15 --data-root ~/data --profile paper
    """
    import torch

    from decobench.results.table import summary_table
    from decobench.run.runner import run_benchmark

    torch.set_num_threads(max(1, torch.get_num_threads()))
    overrides = _parse_set(sets)
    if prompt_policy:
        overrides["prompt_policy"] = prompt_policy
    result, run_dir = run_benchmark(method, setup, regime, seed, profile, base_name, base_path, out, data_root,
                                    device, overrides, log=click.echo)
    click.echo(summary_table(result))
    click.echo(f"wrote {run_dir / 'result.json'}")
