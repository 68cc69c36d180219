"""LoRA adapters on the output projection of every cross-attention transformer block, and their features.

DECO-Bench §4.2: "the last convolutional projection layer of every cross-attention block", i.e. the
``proj_out`` of each Transformer2DModel in the UNet's down, mid and up blocks. With rank 4 on SD v1-5
that is 8 x (sum of proj_out channels = 12,480) = 99,840 trainable parameters, the paper's "99.84K"
(its "4.5-4.7 %" figure cannot be reconciled with that and is not used). ``lora_features`` are the
adaptive-average-pooled outputs of these adapted layers, in down -> mid -> up order.
"""

from __future__ import annotations

import re
from typing import Callable

import torch
import torch.nn.functional as F

_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}


def lora_target_names(unet) -> list[str]:
    names = [n for n, _ in unet.named_modules() if re.search(r"attentions\.\d+\.proj_out$", n)]
    if not names:
        from decobench.models.base import BaseModelError
        raise BaseModelError("this UNet has no cross-attention transformer blocks (no attentions.*.proj_out) "
                             "to put LoRA adapters on; use a Stable-Diffusion-style UNet2DConditionModel")
    return sorted(names, key=lambda n: (_ORDER[n.split(".")[0]], [int(x) if x.isdigit() else 0 for x in n.split(".")]))


def add_lora(unet, rank: int = 4, alpha: float | None = None, adapter_name: str = "default") -> list[str]:
    """Add Gaussian-initialised LoRA adapters (diffusers' PEFT integration) and train only them."""
    from peft import LoraConfig

    targets = lora_target_names(unet)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                target_modules=targets), adapter_name=adapter_name)
    return targets


def parameter_counts(unet) -> dict[str, int]:
    total = sum(p.numel() for p in unet.parameters())
    trainable = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    return {"unet_total": total, "lora_trainable": trainable, "lora_percent": round(100 * trainable / total, 4)}


def lora_state_dict_diffusers(unet) -> dict[str, torch.Tensor]:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))


def save_lora(unet, folder) -> None:
    """``pytorch_lora_weights.safetensors`` in diffusers' format (loads with ``load_lora_weights``)."""
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.save_lora_weights(save_directory=str(folder),
                                              unet_lora_layers=lora_state_dict_diffusers(unet),
                                              safe_serialization=True)


class LoraFeatures:
    """Forward hooks on the adapted layers: collect their outputs; optionally transform the first one.

    ``transform_first`` (e.g. CE+Mask's filter-generating network) replaces the first adapted layer's
    output before the rest of the UNet sees it; the transformed output is what gets recorded.
    ``pop()`` returns (spatial outputs, adaptive-average-pooled outputs), in down -> mid -> up order.
    """

    def __init__(self, unet, targets: list[str], transform_first: Callable | None = None):
        modules = dict(unet.named_modules())
        self.targets = targets
        self.transform_first = transform_first
        self.spatial: list[torch.Tensor] = []
        self._handles = [modules[name].register_forward_hook(self._hook(i)) for i, name in enumerate(targets)]
        self.dims = [modules[name].out_channels if hasattr(modules[name], "out_channels")
                     else modules[name].base_layer.out_channels for name in targets]

    def _hook(self, i: int):
        def hook(module, args, output):
            if i == 0 and self.transform_first is not None:
                output = self.transform_first(output)
            self.spatial.append(output)
            return output
        return hook

    def pop(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        spatial, self.spatial = self.spatial, []
        return spatial, [F.adaptive_avg_pool2d(h, 1).flatten(1) for h in spatial]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
