"""Privacy cloaks (the ``cloak`` track): one universal perturbation per person against face recognition.

FI-UAP, FI-UAP+, OPOM-AffineHull, OPOM-ConvexHull (Zhong & Deng, OPOM) and their gradient-accumulation
variants (GA-FI-UAP, GA-OPOM-ConvexHull: Liu et al., ``papers/004``). A cloak method trains nothing and
has no players: it declares the feature-space objective it maximises and whether it accumulates
gradients; :mod:`decobench.cloaks.craft` does the crafting, the ``fr_protection`` attack the scoring.
Momentum (MI-FGSM) and DFANet (dropout on the surrogate) are settings of every cloak method.
"""

from __future__ import annotations

from pydantic import Field

from decobench.cloaks.craft import CraftSettings
from decobench.methods.base import DecouplingMethod, MethodParams
from decobench.registry import methods


class CloakParams(MethodParams):
    surrogate: str = Field("resnet-arcface", description="the white-box FR model the cloak is crafted on (zoo name)")
    eps: float = Field(8.0, ge=0, le=255, description="L-inf budget, grey levels of 255")
    step: float = Field(1.0, gt=0, le=255, description="sign-step size, grey levels")
    iterations: int = Field(16, ge=1, description="outer iterations (100 for the momentum/DFANet variants)")
    random_start: bool = True
    k: int = Field(4, ge=1, description="GA: inner steps per outer step = k x crafting images")
    centre_steps: int = Field(5, ge=0, description="convex hull: first outer steps aimed at the class centre")
    momentum: float | None = Field(None, ge=0, description="MI-FGSM decay mu (none: off; OPOM's code: 1.0)")
    dropout: float = Field(0.0, ge=0, lt=1, description="DFANet dropout on the surrogate's convolutions (0.1)")
    batch_identities: int = Field(100, ge=1, description="identities crafted in one batch (memory only)")


class CloakMethod(DecouplingMethod):
    """Base of cloak methods: set ``objective`` (see :mod:`decobench.cloaks.objectives`) and ``ga``."""

    Params = CloakParams
    tracks = ("cloak",)
    objective: str = "fi_uap"
    ga: bool = False

    def __init__(self, spec=None, params=None):
        super().__init__(spec, params)
        self.players.clear()  # nothing trains

    @classmethod
    def settings(cls, params: CloakParams) -> CraftSettings:
        p = params.model_dump()
        p.pop("surrogate")
        return CraftSettings(objective=cls.objective, ga=cls.ga, **p)


def _register(name: str, objective: str, ga: bool, doc: str):
    cls = type(name, (CloakMethod,), {"objective": objective, "ga": ga, "__doc__": doc,
                                      "__module__": __name__})
    methods.register(name)(cls)
    return cls


FiUap = _register("fi_uap", "fi_uap", False, "FI-UAP: push each cloaked image's features from its own clean ones.")
FiUapPlus = _register("fi_uap_plus", "fi_uap_plus", False,
                      "FI-UAP+: lower the mean cosine to all of the person's clean features.")
OpomAffine = _register("opom_affine", "affine", False,
                       "OPOM-AffineHull: push features away from the affine hull of the person's clean features.")
OpomConvex = _register("opom_convex", "convex", False,
                       "OPOM-ConvexHull: push features away from the convex hull of the person's clean features.")
GaFiUap = _register("ga_fi_uap", "fi_uap", True, "GA-FI-UAP: FI-UAP with gradient accumulation (GA-OPOM paper).")
GaOpomConvex = _register("ga_opom_convex", "convex", True,
                         "GA-OPOM-ConvexHull: OPOM-ConvexHull with gradient accumulation (GA-OPOM paper).")
