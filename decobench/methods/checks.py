"""``decobench check method NAME``: run a method plugin through every interface check, then a quick run.

Every problem is collected and reported at once (Opacus-validator style), each naming what is at fault.
"""

from __future__ import annotations

import traceback

import torch

from decobench.methods.base import GENERATOR, DecouplingMethod, MethodSpec, StepContext, method_check


def synthetic_context(spec: MethodSpec, batch: int = 12, seed: int = 0, track: str = "data") -> StepContext:
    """A step context with random tensors of the right shapes for ``track``, every feature requiring grad."""
    g = torch.Generator().manual_seed(seed)
    spatial = [torch.randn(batch, d, 4, 4, generator=g).requires_grad_() for d in spec.feature_dims]
    pooled = [h.mean(dim=(2, 3)) for h in spatial]
    labels = {a: torch.arange(batch) % k for a, k in spec.n_classes.items()}
    labels["identity"] = torch.arange(batch) // 2
    if track == "model":  # and what the model track supplies to methods that need it (DPLH)
        shape = tuple(spec.extra.get("source_shape", (3, 32, 32)))
        labels.update(face=(torch.arange(batch) % 4 != 3).long(), landmarks=torch.rand(batch, 10, generator=g) * 2 - 1,
                      pose=torch.rand(batch, 3, generator=g) - 0.5)
        base = {f"{u}_ce": (torch.rand((), generator=g) + 1).requires_grad_() for u in spec.utility}
        return StepContext(spatial=spatial, pooled=pooled, labels=labels, sensitive=spec.sensitive,
                           images=torch.rand(batch, *shape, generator=g) * 2 - 1, base_losses=base)
    lat = torch.randn(batch, 4, 8, 8, generator=g)
    return StepContext(latents=lat, noisy_latents=lat + 0.1, timesteps=torch.full((batch,), 100),
                       noise=torch.randn(batch, 4, 8, 8, generator=g),
                       prediction=torch.randn(batch, 4, 8, 8, generator=g).requires_grad_(), spatial=spatial,
                       pooled=pooled, labels=labels, sensitive=spec.sensitive,
                       base_losses={"mse": (torch.rand((), generator=g) + 1).requires_grad_()})


def interface_report(cls, spec: MethodSpec) -> list[str]:
    """Problems found without training: construction, players, groups, phases, losses, adversary."""
    from decobench.run.train import interface_problems

    problem = method_check(cls)
    if problem:
        return [problem]
    if "cloak" in cls.tracks:
        return cloak_report(cls)
    problems = []
    try:
        method = cls(spec, cls.Params())
    except Exception as exc:  # report, do not crash: the researcher wants the whole list
        return [f"constructing {cls.__name__}(spec, Params()) failed: {type(exc).__name__}: {exc}"]
    problems += interface_problems(method)
    ctx = synthetic_context(spec, track=cls.tracks[0])
    try:
        terms = method.losses(ctx) or {}
    except Exception as exc:
        return problems + [f"losses(ctx) raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"]
    if not isinstance(terms, dict):
        return problems + [f"losses(ctx) must return {{player: {{name: tensor}}}}, got {type(terms).__name__}"]
    for player, named in terms.items():
        if player not in method.players:
            problems.append(f"losses(ctx) returned terms for unknown player {player!r}; players: {sorted(method.players)}")
            continue
        if not isinstance(named, dict):
            problems.append(f"losses(ctx)[{player!r}] must be a dict of named scalar tensors")
            continue
        for name, v in named.items():
            if not (torch.is_tensor(v) and v.dim() == 0):
                problems.append(f"term {player}/{name} is not a scalar tensor")
            elif not torch.isfinite(v):
                problems.append(f"term {player}/{name} is not finite ({v.item()}) on a random batch")
    gen = [v for v in terms.get(GENERATOR, {}).values() if torch.is_tensor(v) and v.requires_grad]
    if terms.get(GENERATOR) and not gen:
        problems.append("generator terms do not depend on the features or the prediction: they cannot move the LoRA")
    if gen:
        inputs = [*ctx.spatial, *([ctx.prediction] if ctx.prediction is not None else [])]
        grads = torch.autograd.grad(sum(gen), inputs, allow_unused=True, retain_graph=True)
        if all(g is None or not g.abs().sum() for g in grads):
            problems.append("generator terms have zero gradient with respect to the features and the prediction")
    if method.has_adversary():
        try:
            logits = method.adversary_logits(ctx.pooled)
            if logits is None or tuple(logits.shape) != (len(ctx.labels[spec.sensitive]), spec.n_sensitive):
                problems.append(f"adversary_logits must return [batch, {spec.n_sensitive}] logits, got "
                                f"{None if logits is None else tuple(logits.shape)}")
        except Exception as exc:
            problems.append(f"adversary_logits raised {type(exc).__name__}: {exc}")
    for p, mod in method.players.items():
        if p != GENERATOR and any(True for _ in mod.parameters()) and p not in terms:
            problems.append(f"player {p!r} has parameters but losses(ctx) gives it no terms: it would never train")
    return problems


def cloak_report(cls) -> list[str]:
    """A cloak method: its settings build, and crafting on random images with a tiny network gives finite masks
    inside the budget that move the features."""
    from torch import nn

    from decobench.cloaks.craft import craft_masks
    from decobench.cloaks.objectives import OBJECTIVES

    try:
        params = cls.Params(iterations=2, k=1, centre_steps=1)
        settings = cls.settings(params)
    except Exception as exc:
        return [f"building {cls.__name__}'s settings failed: {type(exc).__name__}: {exc}"]
    if settings.objective not in OBJECTIVES:
        return [f"objective {settings.objective!r} is not one of {', '.join(OBJECTIVES)}"]

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2)
            self.fc = nn.Linear(8 * 7 * 7, 6)

        def embed_tensor(self, x):
            return torch.nn.functional.normalize(self.fc(self.conv(x * 2 - 1).relu().flatten(1)), dim=1)

    torch.manual_seed(0)
    images = torch.rand(2, 3, 3, 16, 16)
    try:
        masks = craft_masks(images, Tiny(), settings, seed=0)
    except Exception as exc:
        return [f"crafting raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"]
    problems = []
    if masks.shape != (2, 3, 16, 16) or not torch.isfinite(masks).all():
        problems.append(f"masks must be finite [identities, 3, H, W], got {tuple(masks.shape)}")
    elif masks.abs().max() > params.eps / 255 + 1e-6 or not masks.abs().sum():
        problems.append("masks leave the L-inf budget or are all zero")
    return problems


QUICK_OVERRIDES = {"max_steps": "6", "eval_every": "3", "max_train_images": "128", "max_val_images": "32",
                   "release.max_images_per_split": "48", "release.num_inference_steps": "4",
                   "eval.max_test_images": "64", "eval.max_gen_val_images": "32", "eval.classifier.max_epochs": "1",
                   "eval.bootstrap": "100", "eval.quality_subsets": "2"}


# the attacks that read what a method changes (images, features, its adversary); the identity, membership
# and inversion attacks run in the quick end-to-end test and in every real run
CHECK_ATTACKS = ("cls", "pt", "probe", "quality")


def check_method(name: str, run: bool = True, out=None, log=lambda *a: None) -> list[str]:
    """Interface checks on the tiny base's shapes, then (``run``) the quick profile end to end."""
    import tempfile

    from decobench.models.base import load_base
    from decobench.models.lora import lora_target_names
    from decobench.registry import methods

    cls = methods.get(name)
    base = load_base("tiny-synthface")
    mods = dict(base.unet.named_modules())
    spec = MethodSpec([mods[t].out_channels for t in lora_target_names(base.unet)],
                      {"race": 5, "gender": 2, "age": 9, "expression": 2, "profile": 2})
    problems = interface_report(cls, spec)
    if problems or not run or not issubclass(cls, DecouplingMethod) or "cloak" in cls.tracks:
        return problems
    from decobench.run.runner import run_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        try:
            result, _ = run_benchmark(name, "A", profile="quick", out=out or tmp, device="cpu",
                                      overrides=QUICK_OVERRIDES, attacks=list(CHECK_ATTACKS), log=log)
        except Exception as exc:
            return [f"quick run failed: {type(exc).__name__}: {exc}"]
    ev = result["evaluations"][0]["metrics"]
    if cls.adversary_logits is not DecouplingMethod.adversary_logits and ev.get(f"privacy_pt_{result['sensitive']}", {}).get("value") is None:
        problems.append("the method has adversary_logits but Privacy PT read n/a")
    return problems
