from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from decobench.methods.base import DecouplingMethod, concat
from decobench.registry import methods


@methods.register("metric")
class SwappedTripletDecoupling(DecouplingMethod):
    """Metric learning with positives and negatives swapped, so races are pulled together.

    A semi-hard TripletMarginMiner (pytorch-metric-learning) mines (anchor, positive, negative) by
    race on the pooled LoRA features; the triplets enter TripletMarginLoss (margin 0.3) as
    (anchor, negative, positive). No adversary: Privacy PT is "n/a" (the linear probe still applies).

    Note: once races are fully separated, semi-hard triplets no longer exist and the paper's loss is
    exactly zero; ``triplets="all"`` (config) uses every (anchor, positive, negative) triplet instead.
    """

    paper_lr = 1e-4

    def __init__(self, feature_dims, n_sensitive, config=None):
        super().__init__(feature_dims, n_sensitive, config)
        self.miner = miners.TripletMarginMiner(margin=self.config.margin,
                                                type_of_triplets=self.config.triplets)
        self.loss = losses.TripletMarginLoss(margin=self.config.margin)

    def generator_losses(self, features, sensitive):
        emb = concat(features)
        if self.config.triplets == "all":
            a, p, n = lmu.get_all_triplets_indices(sensitive)
        else:
            a, p, n = self.miner(emb, sensitive)
        if len(a) == 0:
            return {"swapped_triplet": emb.sum() * 0.0}
        return {"swapped_triplet": self.config.adv_weight * self.loss(emb, sensitive, indices_tuple=(a, n, p))}
