import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from decobench.methods.base import DecouplingMethod, MethodParams
from decobench.registry import methods


class AdvReconParams(MethodParams):
    lambda1: float = Field(1.0, ge=0, le=100, description="weight of the encoder's pixel (or latent) reconstruction "
                           "privacy term, -lambda1 * MSE")
    hidden: int = Field(512, ge=16, le=8192, description="width of the defender's decoder")


@methods.register("adv_recon")
class AdversarialReconstruction(DecouplingMethod):
    """Adversarial reconstruction (Xiao et al., AAAI 2020): a decoder learns to rebuild the input from the
    released features; the encoder keeps its utility loss and maximises the decoder's error.

    Decoder (its own player): ``MSE(dec(features), source)``; generator: ``-lambda1 * MSE``. The source is the
    image in [-1, 1] (model track) or the clean latents (data track, a port: the diffusion MSE stays the base
    loss); the decoder's output is bounded (tanh, scaled to the source's range) so -MSE cannot run away.
    Players step on gradients of the same forward pass (the paper alternates Dec and Enc updates: simultaneous
    steps are the trainer's rule, said in README). The perceptual term (lambda2) lands with the in-house
    perceptual network.
    """

    Params = AdvReconParams
    paper_lr = 1e-5
    tracks = ("model", "data")

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        shape = tuple(spec.extra.get("source_shape", (3, 32, 32)))  # default: a 32 px image (the model track)
        self.shape, self.scale = shape, 1.0 if len(shape) == 3 and shape[0] == 3 else 4.0
        h = self.params.hidden
        self.players["decoder"] = nn.ModuleDict({"net": nn.Sequential(
            nn.Linear(sum(spec.feature_dims), h), nn.ReLU(), nn.Linear(h, math.prod(shape)))})

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        out = self.players["decoder"]["net"](features).view(len(features), *self.shape)
        return self.scale * torch.tanh(out)

    def losses(self, ctx):
        rec = F.mse_loss(self.reconstruct(ctx.features), ctx.source)
        return {"generator": {"neg_reconstruction": -self.params.lambda1 * rec}, "decoder": {"reconstruction": rec}}
