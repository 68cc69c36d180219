"""``decobench splits``: build, verify and show the fixed stratified splits."""

from __future__ import annotations

import click
from tqdm import tqdm

from decobench.data.open import open_dataset
from decobench.splits import PAPER_NAMES, SPLITS, build_splits, read_manifest, splits_dir, verify_splits
from decobench.splits.store import deviation_summary

_dataset = click.option("--dataset", "name", required=True, help="registered dataset name")
_root = click.option("--root", type=click.Path(), default=None, help="dataset folder (real datasets)")
_dir = click.option("--splits-dir", "splits_dir_", type=click.Path(), default=None,
                    help="where split folders live (default: the checkout's splits/)")


@click.group()
def splits():
    """Fixed Tr/V/G/G-val/Test splits (0.54/0.06/0.225/0.025/0.15), stratified, identity-disjoint."""


@splits.command()
@_dataset
@_root
@_dir
def build(name, root, splits_dir_):
    """Compute the splits from the data and write them with a manifest (deterministic).

    \b
    Examples:
      decobench splits build --dataset fairface --root ~/data/fairface
      decobench splits build --dataset synthfaces-a
    """
    with tqdm(total=2, desc=f"splits {name}", unit="stage") as bar:
        ds = open_dataset(name, root)
        bar.update()
        m = build_splits(ds, splits_dir_)
        bar.update()
    dev, size_err = deviation_summary(m)
    click.echo(f"wrote {splits_dir(splits_dir_) / name}: sizes {m['sizes']}; "
               f"max class deviation {dev:.2f} pp; max size error {size_err:.2f} %")


@splits.command()
@_dataset
@_root
@_dir
def verify(name, root, splits_dir_):
    """Recompute the splits from the data; fail (exit 1) on any difference.

    \b
    Example:
      decobench splits verify --dataset synthfaces-a
    """
    problems = verify_splits(open_dataset(name, root), splits_dir_)
    if problems:
        for p in problems:
            click.echo(f"FAIL {name}: {p}", err=True)
        raise SystemExit(1)
    click.echo(f"OK {name}: split files match the data, their manifest and each other")


@splits.command()
@_dataset
@_dir
def show(name, splits_dir_):
    """Print sizes, fractions and the worst class-share deviation of each split.

    \b
    Example:
      decobench splits show --dataset synthfaces-b
    """
    m = read_manifest(name, splits_dir_)
    n = m["n_images"]
    click.echo(f"{name}: {n} images, stratified on {', '.join(m['stratified_on'])}; "
               f"identity-disjoint: {m['identity_disjoint']}")
    click.echo(f"{'split':<8} {'paper':<6} {'images':>7} {'frac':>7} {'target':>7} {'size err %':>10} {'max dev pp':>10}")
    for s in SPLITS:
        click.echo(f"{s:<8} {PAPER_NAMES[s]:<6} {m['sizes'][s]:>7} {m['sizes'][s] / n:>7.4f} "
                   f"{m['target_fractions'][s]:>7.3f} {m['size_error_pct'][s]:>10.2f} {m['max_class_deviation_pp'][s]:>10.2f}")
