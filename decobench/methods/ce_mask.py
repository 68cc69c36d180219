import torch
from torch import nn

from decobench.methods.ce import CrossEntropyDecoupling
from decobench.registry import methods


@methods.register("ce_mask")
class CEMask(CrossEntropyDecoupling):
    """CE + a filter-generating network that masks channels of the first LoRA output (DISCO-style).

    The FGN (an FC layer on the pooled first-layer output) scores every channel; a sigmoid with
    temperature T (1/30) makes the scores nearly binary and the top (1 - mask_ratio) channels are kept
    (straight-through: hard mask forward, sigmoid gradient backward). The masked output goes on
    through the UNet and, with the other LoRA features, into the adversary. The FGN belongs to the
    generator side: it minimises the generator objective.
    """

    paper_lr = 1e-5

    def __init__(self, feature_dims, n_sensitive, config=None):
        super().__init__(feature_dims, n_sensitive, config)
        c0 = self.feature_dims[0]
        self.generator_modules["fgn"] = nn.Linear(c0, c0)
        self.keep = max(1, round(c0 * (1 - self.config.mask_ratio)))
        self.last_mask: torch.Tensor | None = None

    def channel_mask(self, h: torch.Tensor) -> torch.Tensor:
        scores = self.generator_modules["fgn"](h.mean(dim=(2, 3)))
        soft = torch.sigmoid(scores / self.config.temperature)
        top = soft.topk(self.keep, dim=1).indices
        hard = torch.zeros_like(soft).scatter_(1, top, 1.0)
        return hard + soft - soft.detach()

    def transform_first(self, h):
        mask = self.channel_mask(h)
        self.last_mask = mask.detach()
        return h * mask[:, :, None, None].to(h.dtype)
