"""``decobench check attack NAME``: interface checks, the known-answer calibration, and a small run."""

from __future__ import annotations

import jsonschema
import torch

from decobench.attacks.base import AttackContext, DataRelease, RealSplit, attack_check
from decobench.results.schema import _metric


def small_release(n: int = 160, seed: int = 0) -> DataRelease:
    """A release of real synthfaces-a images standing in for released ones (an identity 'method')."""
    from decobench.data.open import open_dataset
    from decobench.run.stages import n_classes, subset_ids
    from decobench.splits import load_split

    ds = open_dataset("synthfaces-a")

    def split(name, k):
        ids = subset_ids(load_split("synthfaces-a", name), k)
        return RealSplit(ds.load_images(ids, 32), ds.records.iloc[ds.index_of(ids)].reset_index(drop=True), ids)
    gen, gen_val, test = split("gen", n), split("gen_val", n // 2), split("test", n)
    g = torch.Generator().manual_seed(seed)
    feats = {(s, p): torch.randn(len(x.ids), 32, generator=g) for s, x in (("gen", gen), ("test", test))
             for p in ("null", "train")}
    from decobench.evaluation.identification import identity_gallery

    return DataRelease(dataset="synthfaces-a", sensitive="race", utility=("gender", "age"),
                       n_classes=n_classes(ds.records), released=gen, released_gen=gen,
                       real={"train_on": gen, "gen": gen, "gen_val": gen_val, "test": test}, features=feats,
                       adversary=torch.nn.Linear(32, 5), fingerprint=f"check-{seed}",
                       identity_gallery=identity_gallery(ds, gen.ids, test.ids, 32))


def check_attack(name: str) -> list[str]:
    from decobench.registry import attacks
    from decobench.run.config import PROFILES

    cls = attacks.get(name)
    problem = attack_check(cls)
    if problem:
        return [problem]
    problems = []
    try:
        for c in cls.calibrate(seed=0):
            if not c.passed:
                problems.append(f"calibration {c.case}: {c.metric} {c.value:.4f} CI {c.ci} — expected {c.expect}")
    except Exception as exc:
        problems.append(f"calibrate() raised {type(exc).__name__}: {exc}")
    runs = []
    if "cloak" in cls.accepts:  # ten people under random +-8 masks, one target
        from decobench.attacks.base import CloakRelease
        from decobench.cloaks.data import synthfaces
        from decobench.run.cloak_track import CloakTrackConfig

        people = synthfaces(10, 200)
        masks = (torch.rand(10, 3, *people.test.shape[2:4], generator=torch.Generator().manual_seed(0)) * 2 - 1) * 8 / 255
        runs.append((CloakTrackConfig(targets=("resnet-arcface",), bootstrap=100),
                     lambda: CloakRelease(people, masks, "resnet-arcface")))
    if "data" in cls.accepts:
        cfg = PROFILES["quick"].eval.model_copy(update={"classifier": PROFILES["quick"].eval.classifier.model_copy(
            update={"max_epochs": 1}), "bootstrap": 100, "quality_subsets": 2})
        runs.append((cfg, small_release))
    for cfg, release in runs:
        try:
            res = cls(AttackContext(cfg=cfg)).run(release())
        except Exception as exc:
            return problems + [f"run(release) raised {type(exc).__name__}: {exc}"]
        if not res.metrics:
            problems.append("run(release) returned no metrics")
        for k, m in res.metrics.items():
            for e in jsonschema.Draft202012Validator(_metric).iter_errors(m):
                problems.append(f"metric {k}: {'/'.join(map(str, e.path)) or '(top)'}: {e.message}")
    return problems
