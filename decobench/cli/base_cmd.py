"""``decobench base``: the base diffusion models."""

from __future__ import annotations

import click

from decobench.models.base import BASES, TINY_DIR


@click.group()
def base():
    """Base latent-diffusion models (tiny-synthface embedded; sd15 from a local folder)."""


@base.command("list")
def list_bases():
    """List the base models and where they come from."""
    for name, doc in BASES.items():
        click.echo(f"{name:<15} {doc}")


@base.command()
@click.argument("name", type=click.Choice(["tiny-synthface"]))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help=f"output folder (default: the package's {TINY_DIR.name}/, replaced whole when done)")
@click.option("--vae-steps", type=int, default=None)
@click.option("--unet-steps", type=int, default=None)
@click.option("--images", "n_images", type=int, default=None, help="pretraining images drawn")
@click.option("--seed", type=int, default=0, show_default=True)
def train(name, out, vae_steps, unet_steps, n_images, seed):
    """Pretrain tiny-synthface on the disjoint synthfaces-pretrain population and write it with a manifest.

    \b
    Example (reproduces the committed weights, ~15 minutes on 2 CPU cores):
      decobench base train tiny-synthface
    """
    from dataclasses import replace

    import torch

    from decobench.models.pretrain import PretrainConfig, pretrain_tiny

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = PretrainConfig(seed=seed)
    cfg = replace(cfg, **{k: v for k, v in {"vae_steps": vae_steps, "unet_steps": unet_steps,
                                            "n_images": n_images}.items() if v is not None})
    parts = ["decobench base train tiny-synthface"] + [f"--{k.replace('_', '-')} {v}" for k, v in
                                                       {"vae_steps": vae_steps, "unet_steps": unet_steps,
                                                        "images": n_images}.items() if v is not None]
    if seed:
        parts.append(f"--seed {seed}")
    m = pretrain_tiny(out or TINY_DIR, cfg, command=" ".join(parts))
    click.echo(f"wrote {out or TINY_DIR}: losses {m['final_losses']}, {m['wall_s']} s")


@base.command()
@click.option("--base", "base_name", default="tiny-synthface", show_default=True)
@click.option("--base-path", type=click.Path(), default=None)
@click.option("--dataset", default="synthfaces-a", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
@click.option("--n", default=8, show_default=True)
def preview(base_name, base_path, dataset, out, n):
    """Real vs VAE-reconstructed vs img2img samples (Test split) with their prompts.

    \b
    Example:
      decobench base preview --out benchmarks/results/tiny_synthface_preview.png
    """
    from decobench.data.open import open_dataset
    from decobench.data.preview import save_png
    from decobench.models.base import load_base
    from decobench.models.preview import base_preview
    from decobench.splits import load_split

    ds = open_dataset(dataset)
    ids = load_split(dataset, "test")
    step = max(1, len(ids) // n)
    save_png(base_preview(load_base(base_name, base_path), ds, n=n, split_ids=ids[::step][:n]), out)
    click.echo(f"wrote {out}")
