import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from decobench.methods.base import DecouplingMethod, MethodParams
from decobench.models.perceptual import perceptual_loss
from decobench.registry import methods


class AdvReconParams(MethodParams):
    lambda1: float = Field(1.0, ge=0, le=100, description="weight of the encoder's pixel (or latent) reconstruction "
                           "privacy term, -lambda1 * MSE")
    lambda2: float = Field(0.0, ge=0, le=100, description="weight of the encoder's perceptual privacy term, "
                           "-lambda2 * L_perc (paper Table 2 sweeps 0-5 and 10; model track only)")
    mu2: float = Field(0.0, ge=0, le=100, description="weight of the perceptual term in the decoder's own loss "
                       "(the paper's Table 2 trains with 1)")
    perceptual: str = Field("synthface-perceptual-v1", description="the perceptual network: synthface-perceptual-v1 "
                            "(shipped) or torchscript:<path>")
    decoder: Literal["conv", "mlp"] = Field("mlp", description="the defender's decoder: conv (fc, then two 2x "
                                            "upsampling convolutions: the paper's mirror of the encoder, at our "
                                            "scale) or mlp (one hidden layer)")
    hidden: int = Field(512, ge=16, le=8192, description="mlp: hidden width; conv: channels after the fc "
                        "(hidden / 8)")


@methods.register("adv_recon")
class AdversarialReconstruction(DecouplingMethod):
    """Adversarial reconstruction (Xiao et al., AAAI 2020): a decoder learns to rebuild the input from the
    released features; the encoder keeps its utility loss and maximises the decoder's error.

    Decoder (its own player): ``MSE(dec(features), source)``; generator: ``-lambda1 * MSE``. The source is the
    image in [-1, 1] (model track) or the clean latents (data track, a port: the diffusion MSE stays the base
    loss); the decoder's output is bounded (tanh, scaled to the source's range) so -MSE cannot run away.
    Players step on gradients of the same forward pass (the paper alternates Dec and Enc updates: simultaneous
    steps are the trainer's rule, said in README). The perceptual term L_perc compares the decoder's output
    with the image through a frozen network (:mod:`decobench.models.perceptual`): generator
    ``-lambda2 * L_perc``, decoder ``+ mu2 * L_perc``. It needs images, so the model track only.
    """

    Params = AdvReconParams
    paper_lr = 1e-5
    tracks = ("model", "data")

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        shape = tuple(spec.extra.get("source_shape", (3, 32, 32)))  # default: a 32 px image (the model track)
        self.shape, self.scale = shape, 1.0 if len(shape) == 3 and shape[0] == 3 else 4.0
        h, d = self.params.hidden, sum(spec.feature_dims)
        if self.params.decoder == "conv":
            if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
                from decobench.run.config import ConfigError
                raise ConfigError(f"adv_recon decoder=conv upsamples twice by 2: it needs a [C, H, W] source with H "
                                  f"and W divisible by 4, this run's is {list(shape)}; use method.decoder=mlp or a "
                                  f"resolution divisible by 4")
            c = max(8, h // 8)
            net = nn.Sequential(nn.Linear(d, c * (shape[1] // 4) * (shape[2] // 4)), nn.ReLU(),
                                nn.Unflatten(1, (c, shape[1] // 4, shape[2] // 4)),
                                nn.Upsample(scale_factor=2), nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU(),
                                nn.Upsample(scale_factor=2), nn.Conv2d(c // 2, c // 4, 3, padding=1), nn.ReLU(),
                                nn.Conv2d(c // 4, shape[0], 3, padding=1))
        else:
            net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, math.prod(shape)))
        self.players["decoder"] = nn.ModuleDict({"net": net})
        self._perceptual = ()  # a frozen network outside every player (a tuple: not a registered submodule)
        if self.params.lambda2 or self.params.mu2:
            if len(shape) != 3 or shape[0] != 3:
                from decobench.run.config import ConfigError
                raise ConfigError("adv_recon's perceptual terms (method.lambda2, method.mu2) compare images: they "
                                  "run on the model track only (--track model); on the data track set both to 0")
            self._perceptual = (perceptual_loss(self.params.perceptual),)

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        out = self.players["decoder"]["net"](features).reshape(len(features), *self.shape)
        return self.scale * torch.tanh(out)

    def losses(self, ctx):
        p = self.params
        out = self.reconstruct(ctx.features)
        rec = F.mse_loss(out, ctx.source)
        terms = {"generator": {"neg_reconstruction": -p.lambda1 * rec}, "decoder": {"reconstruction": rec}}
        if self._perceptual:
            perc = self._perceptual[0].to(out.device)(out, ctx.source)
            terms["generator"]["neg_perceptual"] = -p.lambda2 * perc
            terms["decoder"]["perceptual"] = p.mu2 * perc
        return terms
