"""``decobench data``: look at a dataset before using it."""

from __future__ import annotations

import json

import click
from tqdm import tqdm

from decobench.data.open import open_dataset
from decobench.data.preview import preview_grid, save_png


@click.group()
def data():
    """Inspect datasets: label counts after mapping, problems found, sample sheets."""


@data.command()
@click.option("--dataset", "name", required=True, help="registered dataset name (decobench list datasets)")
@click.option("--root", type=click.Path(), default=None, help="dataset folder (real datasets)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--check-images/--no-check-images", default=True,
              help="decode every image file to find unreadable ones (real datasets)")
def summary(name, root, as_json, check_images):
    """Images and label counts per attribute (after cross-label mapping) and problems found.

    \b
    Examples:
      decobench data summary --dataset synthfaces-b
      decobench data summary --dataset utkface --root ~/data/UTKFace --json
    """
    ds = open_dataset(name, root)
    problems = list(ds.problems)
    if check_images and hasattr(ds, "check_images"):
        bar = lambda it: tqdm(it, desc=f"checking {name} images", unit="img", leave=False)
        problems += ds.check_images(progress=bar)
    info = {
        "dataset": name, "images": int(len(ds.records)), "excluded_or_bad": len(problems),
        "identities": int(ds.records["identity"].nunique()) if ds.has_identities else None,
        "label_counts": ds.label_counts(), "problems": problems,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{name}: {info['images']} images"
               + (f", {info['identities']} identities" if info["identities"] else ""))
    for attr, counts in info["label_counts"].items():
        total = sum(counts.values()) or 1
        click.echo(f"  {attr}:")
        for cls, c in counts.items():
            click.echo(f"    {cls:<8} {c:>7}  {100 * c / total:5.1f}%")
    click.echo(f"problems: {len(problems)}")
    for p in problems[:50]:
        click.echo(f"  - {p}")
    if len(problems) > 50:
        click.echo(f"  ... and {len(problems) - 50} more (use --json for all)")


@data.command()
@click.option("--dataset", "name", required=True, help="registered dataset name")
@click.option("--root", type=click.Path(), default=None, help="dataset folder (real datasets)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write")
@click.option("--n", default=32, show_default=True, help="number of samples")
@click.option("--columns", default=8, show_default=True)
@click.option("--tile", default=128, show_default=True, help="pixels per sample")
@click.option("--seed", default=0, show_default=True, help="which samples (seeded draw)")
def preview(name, root, out, n, columns, tile, seed):
    """A grid of samples with their labels drawn under them.

    \b
    Examples:
      decobench data preview --dataset synthfaces-a --out synthfaces-a.png
      decobench data preview --dataset fairface --root ~/data/fairface --out ff.png --n 16
    """
    ds = open_dataset(name, root)
    save_png(preview_grid(ds, n=n, columns=columns, tile=tile, seed=seed), out)
    click.echo(f"wrote {out} ({min(n, len(ds.records))} samples of {name})")
