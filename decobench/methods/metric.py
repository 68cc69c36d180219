from typing import Literal

from pydantic import Field
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from decobench.methods.base import DecouplingMethod, MethodParams
from decobench.registry import methods


class MetricParams(MethodParams):
    margin: float = Field(0.3, gt=0, le=10, description="triplet margin")
    weight: float = Field(1.0, ge=0, le=100, description="weight of the swapped-triplet term")
    triplets: Literal["semihard", "hard", "all"] = Field(
        "semihard", description="mined semihard/hard triplets (paper: semihard), or every triplet")


@methods.register("metric")
class SwappedTripletDecoupling(DecouplingMethod):
    """Metric learning with positives and negatives swapped, so sensitive classes are pulled together.

    A TripletMarginMiner (pytorch-metric-learning, semi-hard as in the paper) mines (anchor, positive,
    negative) by the sensitive label on the pooled LoRA features; they enter TripletMarginLoss (margin
    0.3) as (anchor, negative, positive). No adversary: Privacy PT is "n/a" (the probe still applies).

    Once classes are fully separated, semi-hard triplets no longer exist and the paper's loss is exactly
    zero; ``triplets=all`` uses every (anchor, positive, negative) triplet instead.
    """

    Params = MetricParams
    paper_lr = 1e-4

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        self.miner = miners.TripletMarginMiner(margin=self.params.margin, type_of_triplets=self.params.triplets)
        self.loss = losses.TripletMarginLoss(margin=self.params.margin)

    def losses(self, ctx):
        emb, y = ctx.features, ctx.sensitive_labels
        a, p, n = lmu.get_all_triplets_indices(y) if self.params.triplets == "all" else self.miner(emb, y)
        if len(a) == 0:
            return {"generator": {"swapped_triplet": emb.sum() * 0.0}}
        return {"generator": {"swapped_triplet": self.params.weight * self.loss(emb, y, indices_tuple=(a, n, p))}}
