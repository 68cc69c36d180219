"""DECO-Bench setups (A, B, C) and data regimes (G, V+G, Tr+V+G), registered like any plugin.

A setup names dataset *roles*: ``a`` is the FairFace role and ``b`` the UTKFace role. The embedded
default fills them with ``synthfaces-a``/``synthfaces-b``; ``--data-root`` fills them with
``fairface``/``utkface``.
"""

from __future__ import annotations

from dataclasses import dataclass

from decobench.registry import setups

EMBEDDED_ROLES = {"a": "synthfaces-a", "b": "synthfaces-b"}
REAL_ROLES = {"a": "fairface", "b": "utkface"}

# which real splits are released (img2img) and used to train the evaluation classifiers
REGIMES = {"G": ("gen",), "V+G": ("val", "gen"), "Tr+V+G": ("train", "val", "gen")}


@dataclass(frozen=True)
class Setup:
    name: str
    train: tuple[str, ...]     # roles whose Tr/V train the generator
    evaluate: tuple[str, ...]  # roles whose G is released and whose Test scores it
    doc: str

    def datasets(self, roles: dict[str, str]) -> dict[str, tuple[str, ...]]:
        return {"train": tuple(roles[r] for r in self.train), "evaluate": tuple(roles[r] for r in self.evaluate)}


for _s in (
    Setup("A", ("a",), ("a",), "Train on a (FairFace role), release and test on a"),
    Setup("B", ("a",), ("b",), "Train on a (FairFace role), release and test on b (UTKFace role): cross-dataset"),
    Setup("C", ("a", "b"), ("a", "b"), "Train on a+b jointly, release and test on each of a and b"),
):
    setups.add(_s.name, _s, summary=_s.doc)
