"""SynthFaces: a procedural, seeded face generator with ground-truth attributes and identities."""

from decobench.data.synthfaces.population import DOMAINS, DomainConfig, Population, build_population
from decobench.data.synthfaces.render import render_faces, render_nonfaces

__all__ = ["DOMAINS", "DomainConfig", "Population", "build_population", "render_faces",
           "render_nonfaces"]
