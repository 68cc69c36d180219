import torch.nn.functional as F
from torch import nn

from decobench.methods.base import DecouplingMethod, concat
from decobench.registry import methods


@methods.register("ce")
class CrossEntropyDecoupling(DecouplingMethod):
    """CE decoupling: an FC adversary on pooled LoRA features minimises CE; the LoRA maximises it.

    Generator term: ``-adv_weight * CE(adversary(features), race)`` (gradient reaches the LoRA;
    the adversary's weights are not stepped by it). Adversary term: ``CE`` on detached features.
    """

    paper_lr = 1e-5

    def __init__(self, feature_dims, n_sensitive, config=None):
        super().__init__(feature_dims, n_sensitive, config)
        self.adversary_modules["fc"] = nn.Linear(sum(self.adversary_input_dims()), n_sensitive)

    def adversary_input_dims(self):
        return self.feature_dims

    def adversary_logits(self, features):
        return self.adversary_modules["fc"](concat(features))

    def generator_losses(self, features, sensitive):
        return {"neg_adversary_ce": -self.config.adv_weight * F.cross_entropy(self.adversary_logits(features), sensitive)}

    def adversary_losses(self, features, sensitive):
        return {"adversary_ce": F.cross_entropy(self.adversary_logits(features), sensitive)}
