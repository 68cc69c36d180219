import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from decobench.methods.base import DecouplingMethod, MethodParams
from decobench.registry import methods


class CEParams(MethodParams):
    adv_weight: float = Field(1.0, ge=0, le=100, description="lambda on the generator's privacy term")


@methods.register("ce")
class CrossEntropyDecoupling(DecouplingMethod):
    """CE decoupling: an FC adversary on pooled LoRA features minimises CE; the LoRA maximises it.

    Generator: ``-adv_weight * CE(adversary(features), sensitive)``. Adversary: ``CE``. Each player's
    term is differentiated only with respect to its own parameters.
    """

    Params = CEParams
    paper_lr = 1e-5
    tracks = ("data", "model")

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.adversary["fc"] = nn.Linear(sum(spec.feature_dims), spec.n_sensitive)

    def adversary_logits(self, pooled):
        return self.adversary["fc"](torch.cat(pooled, 1))

    def losses(self, ctx):
        ce = F.cross_entropy(self.adversary_logits(ctx.pooled), ctx.sensitive_labels)
        return {"generator": {"neg_adversary_ce": -self.params.adv_weight * ce}, "adversary": {"adversary_ce": ce}}
