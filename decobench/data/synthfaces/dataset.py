"""The embedded SynthFaces domains as registered datasets."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from decobench.data.base import FaceDataset
from decobench.data.synthfaces.population import DOMAINS, Population, build_population
from decobench.data.synthfaces.render import render_faces, render_nonfaces
from decobench.registry import datasets


@lru_cache(maxsize=4)
def _population(domain: str) -> Population:
    return build_population(DOMAINS[domain])


@lru_cache(maxsize=2)
def _auxiliary_population(cfg) -> Population:
    return build_population(cfg)


class SynthFaces(FaceDataset):
    """Procedural faces rendered on demand from a seeded population (no files, no root)."""

    domain = "synthfaces-a"
    strat_columns = ("race_orig", "gender_orig", "age_orig")
    layout = "(embedded: generated from the package, no folder needed)"

    def __init__(self, root=None) -> None:
        super().__init__()
        self.population = _population(self.domain)
        self.config = self.population.config
        self.name = self.domain
        self.records = self.population.labels

    def load_images(self, image_ids, size: int = 64) -> np.ndarray:
        # small sizes are rendered at >= 64 px and block-averaged, as a camera would (no aliasing)
        return render_faces(self.population, self.index_of(image_ids), size, supersample=max(1, 64 // size))[0]

    def render(self, indices, size: int = 64):
        """Images and 5-point landmarks [N, 5, 2] (pixels) by row index."""
        return render_faces(self.population, indices, size)

    def _auxiliary(self, n: int) -> Population:
        from dataclasses import replace

        per = self.config.images_per_identity
        cfg = replace(self.config, name=f"{self.domain}-aux", seed=self.config.seed + 1_000_003,
                      n_identities=max(1, -(-n // per)))
        return _auxiliary_population(cfg)

    def auxiliary(self, n: int, size: int = 64):
        """An attacker's own population: the same domain drawn with another seed (no identity of any
        split): its first ``n`` images (15 per identity) with their labels."""
        pop = self._auxiliary(n)
        return render_faces(pop, np.arange(n), size, supersample=max(1, 64 // size))[0], pop.labels.iloc[:n]

    def landmarks(self, image_ids, size: int = 64, auxiliary_n: int | None = None) -> np.ndarray:
        """5-point landmarks [N, 5, 2] in pixels of the ``size`` image ``load_images`` gives (eyes, nose tip,
        mouth corners), for this domain's images and for those of ``auxiliary(auxiliary_n)``."""
        ids = list(image_ids)
        aux = [i.startswith(f"{self.domain}-aux/") for i in ids]
        out = np.zeros((len(ids), 5, 2), np.float32)
        ss = max(1, 64 // size)
        own = [k for k, a in enumerate(aux) if not a]
        if own:
            out[own] = render_faces(self.population, self.index_of([ids[k] for k in own]), size, supersample=ss)[1]
        other = [k for k, a in enumerate(aux) if a]
        if other:
            if auxiliary_n is None:
                raise ValueError("landmarks of auxiliary images need the auxiliary_n their auxiliary() call used")
            rows = np.array([int(ids[k].rsplit("/", 1)[1]) for k in other])
            out[other] = render_faces(self._auxiliary(auxiliary_n), rows, size, supersample=ss)[1]
        return out

    def nonface_patches(self, n: int, seed: int = 0, size: int = 64) -> np.ndarray:
        """Non-face patches (same colour/texture statistics, no facial layout) for detection tasks."""
        return render_nonfaces(n, seed=seed + self.config.seed, size=size)


@datasets.register("synthfaces-a")
class SynthFacesA(SynthFaces):
    """Embedded FairFace stand-in: 60,000 faces of 4,000 identities, 7 original race labels, web-photo style."""

    domain = "synthfaces-a"


@datasets.register("synthfaces-b")
class SynthFacesB(SynthFaces):
    """Embedded UTKFace stand-in: 60,000 faces of 4,000 identities, ages in years, frontal studio style."""

    domain = "synthfaces-b"


@datasets.register("synthfaces-fr")
class SynthFacesFR(SynthFaces):
    """Embedded face-recognition population: 48,000 faces of 3,200 identities with identity marks (FR zoo)."""

    domain = "synthfaces-fr"
