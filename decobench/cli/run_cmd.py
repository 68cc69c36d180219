"""``decobench run``: the main job."""

from __future__ import annotations

import click

from decobench.models.prompts import POLICIES
from decobench.run.config import PROFILES, SENSITIVE, ConfigError
from decobench.setups import REGIMES


def parse_sets(values, option: str = "--set") -> dict:
    """``KEY=VALUE`` strings -> {key: raw string}; the typed config parses and range-checks the values."""
    out = {}
    for v in values:
        k, sep, raw = v.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"{option} expects KEY=VALUE, got {v!r}")
        if k.strip() in out and option == "--sweep":
            raise ConfigError(f"--sweep {k.strip()} is given twice; put every value in one --sweep")
        out[k.strip()] = raw.strip()
    return out


@click.command()
@click.option("--method", required=True, help="decoupling method (decobench list methods)")
@click.option("--setup", default=None, help="A, B or C (decobench list setups); the cloak track has its own "
              "protocol (PC, Privacy-Commons) and needs none")
@click.option("--track", default="data", show_default=True, type=click.Choice(["data", "model", "cloak"]),
              help="data: release a synthetic copy through a LoRA (DECO-Bench); model: release a trained encoder; "
                   "cloak: each person releases their photos under their own cloak")
@click.option("--regime", default="G", show_default=True, type=click.Choice(list(REGIMES)),
              help="which real splits the data track releases (no meaning on the model track)")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--profile", default="embedded", show_default=True, type=click.Choice(list(PROFILES)))
@click.option("--sensitive", default="race", show_default=True, type=click.Choice(SENSITIVE),
              help="the attribute to remove; the others are utility")
@click.option("--attacks", default=None, help="comma-separated attack suite (default: the profile's; "
              "decobench list attacks)")
@click.option("--base", "base_name", default="tiny-synthface", show_default=True,
              type=click.Choice(["tiny-synthface", "sd15"]))
@click.option("--base-path", type=click.Path(), default=None, help="local diffusers folder of the base model")
@click.option("--data-root", type=click.Path(), default=None,
              help="folder holding fairface/ and utkface/ (real datasets instead of SynthFaces)")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.option("--prompt-policy", type=click.Choice(POLICIES), default=None,
              help="paper prompt, without the sensitive attribute, or empty")
@click.option("--compile", "compile_unet", is_flag=True,
              help="torch.compile the released UNet (release, and attacks that query it): 1.7x the release "
                   "throughput of SD v1-5 on an H100 after about a minute of compilation; changes no setting")
@click.option("--gradient-checkpointing", is_flag=True,
              help="recompute UNet activations in the LoRA's backward pass: SD v1-5 at batch 128 trains in "
                   "8.6 GiB instead of 23.1 GiB, 2.6x slower (H100); changes no setting")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="override a config value: lr=3e-4, release.num_inference_steps=30, eval.classifier.max_epochs=20, "
                   "method.adv_weight=2, resolution=128")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2,...",
              help="run once per value (several --sweep: every combination), each its own result.json; e.g. "
                   "Xiao et al.'s Table 2: --sweep method.lambda2=0,1,2,3,4,5,10")
def run(method, setup, track, regime, seed, profile, sensitive, attacks, base_name, base_path, data_root, out, device,
        prompt_policy, compile_unet, gradient_checkpointing, sets, sweeps):
    """Train a decoupling method, release a synthetic split, run the attack suite, write result.json.

    \b
    Examples:
      decobench run --method ce_mask --setup A
      decobench run --method metric --setup C --profile quick --seed 1
      decobench run --method ce --setup B --regime V+G --set method.adv_weight=2
      decobench run --method ce --setup A --sensitive gender --attacks cls,probe
      decobench run --method ce_dp --setup A --track model
      decobench run --method ga_opom_convex --track cloak --set method.surrogate=resnet-cosface
      decobench run --method adv_recon --setup A --track model --set method.mu2=1 --sweep method.lambda2=0,1,2,3,4,5,10
      decobench run --method ce --setup A --base sd15 --base-path ~/sd15 --data-root ~/data --profile paper
    """
    import torch

    from decobench.results.table import summary_table
    from decobench.run.identity import Execution
    from decobench.run.runner import run_benchmark

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if setup is None and track != "cloak":
        raise ConfigError("--setup is required on the data and model tracks: A, B or C (decobench list setups)")
    setup = setup or "PC"
    overrides = parse_sets(sets)
    if prompt_policy:
        overrides["train.prompt_policy"] = prompt_policy
    suite = [a.strip() for a in attacks.split(",") if a.strip()] if attacks else None
    grid = sweep_grid(sweeps, overrides)
    if len(grid) > 1:  # every point's settings are checked before the first one runs
        from decobench.registry import methods as method_registry
        from decobench.run.config import resolve

        for point in grid:
            if track == "cloak":
                from decobench.run.cloak_track import resolve_cloak

                resolve_cloak(profile, method_registry.get(method), point)
            else:
                resolve(profile, method_registry.get(method), method, point, sensitive)
    for k, point in enumerate(grid):
        if len(grid) > 1:
            click.echo(f"== sweep {k + 1}/{len(grid)}: " + ", ".join(f"{a}={point[a]}" for a in parse_sets(sweeps, "--sweep")))
        result, run_dir = run_benchmark(method, setup, regime, seed, profile, base_name, base_path, out, data_root,
                                        device, point, sensitive=sensitive, attacks=suite, log=click.echo,
                                        execution=Execution(compile_unet, gradient_checkpointing), track=track)
        if result is None:  # a helper process of a multi-process run: the main process reports
            continue
        click.echo(summary_table(result))
        click.echo(f"wrote {run_dir / 'result.json'}")


def sweep_grid(sweeps, overrides: dict) -> list[dict]:
    """``KEY=V1,V2`` sweeps -> one override dict per combination (the --set values kept; a key both set and
    swept is an error)."""
    grid = [dict(overrides)]
    for key, raw in parse_sets(sweeps, "--sweep").items():
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"--sweep {key}= has no values; give them comma-separated, e.g. {key}=0,1,2")
        if key in overrides:
            raise ConfigError(f"{key} is both --set and --sweep; keep one")
        grid = [{**g, key: v} for g in grid for v in values]
    return grid
