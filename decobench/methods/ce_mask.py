import torch
from pydantic import Field
from torch import nn

from decobench.methods.ce import CEParams, CrossEntropyDecoupling
from decobench.registry import methods


class CEMaskParams(CEParams):
    mask_ratio: float = Field(0.6, gt=0, lt=1, description="fraction of first-layer channels masked")
    temperature: float = Field(1 / 30, gt=0, le=10, description="sigmoid temperature of the FGN")
    fgn_lora_rank: int = Field(4, ge=0, le=256, description="LoRA rank on the FGN's FC layer (A.3); 0: train the FC")


@methods.register("ce_mask")
class CEMask(CrossEntropyDecoupling):
    """CE + a filter-generating network (FGN) masking channels of the first adapted layer's output.

    The FGN is an FC layer on the pooled first-layer output that scores every channel; a sigmoid at
    temperature T (1/30) makes the scores nearly binary and the top (1 - mask_ratio) channels are kept
    (straight-through: hard mask forward, sigmoid gradient backward). The masked output goes on through
    the UNet and, with the other LoRA features, into the adversary. DECO-Bench A.3: "A LoRA adapter is
    added to the learnable layer of FGN" — with ``fgn_lora_rank > 0`` (default 4) the FC is frozen at
    its seeded initialisation and a peft LoRA on it is what trains; ``fgn_lora_rank=0`` trains the FC
    itself (A.3's other figure, "90K trainable parameters", matches a full FC on SD v1-5's 320 channels).
    The FGN belongs to the generator player.
    """

    Params = CEMaskParams
    paper_lr = 1e-5
    version = "2"

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        c0 = spec.feature_dims[0]
        fgn = nn.Sequential()
        fgn.add_module("fc", nn.Linear(c0, c0))
        if self.params.fgn_lora_rank:
            from peft import LoraConfig, inject_adapter_in_model

            r = self.params.fgn_lora_rank
            fgn = inject_adapter_in_model(LoraConfig(r=r, lora_alpha=r, target_modules=["fc"],
                                                     init_lora_weights="gaussian"), fgn)
            for n, p in fgn.named_parameters():
                p.requires_grad_("lora_" in n)
        self.generator["fgn"] = fgn
        self.keep = max(1, round(c0 * (1 - self.params.mask_ratio)))
        self.last_mask: torch.Tensor | None = None

    def optimizer_groups(self):
        groups = super().optimizer_groups()
        for g in groups:  # the frozen FC under the FGN's LoRA is not a trainable parameter
            g.params = [p for p in g.params if p.requires_grad]
        return groups

    def channel_mask(self, h: torch.Tensor) -> torch.Tensor:
        scores = self.generator["fgn"](h.float().mean(dim=(2, 3)))
        soft = torch.sigmoid(scores / self.params.temperature)
        top = soft.topk(self.keep, dim=1).indices
        hard = torch.zeros_like(soft).scatter_(1, top, 1.0)
        return hard + soft - soft.detach()

    def transform_first(self, h):
        mask = self.channel_mask(h)
        self.last_mask = mask.detach()
        return h * mask[:, :, None, None].to(h.dtype)
