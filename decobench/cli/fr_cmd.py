"""``decobench fr``: the face-recognition zoo (list, train)."""

from __future__ import annotations

import click


@click.group()
def fr():
    """Face-recognition models shared by identity attacks, inversion scoring and cloaks."""


@fr.command("list")
def list_models():
    """Zoo models with their identity-calibration figures (from the committed manifest)."""
    from decobench.models.fr.zoo import ZOO, WEIGHTS, manifest

    man = manifest()
    floor = man.get("attribute_only_floor", {})
    click.echo(f"{'model':<20}{'backbone':<11}{'loss':<19}{'rank-1':>8}{'rank-5':>8}{'verif.':>8}"
               f"{'epoch':>7}  weights")
    for s in ZOO:
        m = man["models"].get(s.name)
        have = (WEIGHTS / f"{s.name}.safetensors").is_file()
        if m:
            c = m["calibration"]
            click.echo(f"{s.name:<20}{s.family:<11}{s.loss:<19}{100 * c['rank1']:>7.1f}%{100 * c['rank5']:>7.1f}%"
                       f"{100 * c['verification_accuracy']:>7.1f}%{m['selected_epoch']:>7}  "
                       f"{'yes' if have else 'MISSING'}")
        else:
            click.echo(f"{s.name:<20}{s.family:<11}{s.loss:<19}{'-':>8}{'-':>8}{'-':>8}{'-':>7}  "
                       f"{'yes' if have else 'no (decobench fr train --model ' + s.name + ')'}")
    if floor:
        click.echo(f"attribute-only matcher (race, gender, age; the floor): rank-1 {100 * floor['rank1']:.2f}%, "
                   f"rank-5 {100 * floor['rank5']:.2f}%")
    if "calibration_protocol" in man:
        click.echo(man["calibration_protocol"])
    click.echo("also: dlib (pip install 'decobench[dlib]'), torchscript:<path>@<size>")


@fr.command()
@click.option("--model", "models", multiple=True, help="zoo model(s) to train; default: all")
@click.option("--epochs", type=click.IntRange(1, 200), default=None, help="override the zoo's epochs (tests)")
def train(models, epochs):
    """Train zoo models on synthfaces-fr and rewrite their weights and manifest entries.

    \b
    Examples:
      decobench fr train                       # the whole zoo, one model after another (~1.5 h on 2 CPU cores)
      decobench fr train --model resnet-arcface
    """
    import torch

    from decobench.models.base import BaseModelError
    from decobench.models.fr.build import build
    from decobench.models.fr.zoo import SPECS

    unknown = [m for m in models if m not in SPECS]
    if unknown:
        raise BaseModelError(f"unknown FR model(s) {', '.join(unknown)}; zoo models: {', '.join(SPECS)}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    build(list(models) or list(SPECS), epochs=epochs, log=lambda m: click.echo(m, err=True))
