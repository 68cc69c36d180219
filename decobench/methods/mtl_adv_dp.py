import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from decobench.methods.base import DecouplingMethod, DPParams, OptimGroup, Phase
from decobench.models.perceptual import perceptual_loss
from decobench.registry import methods


class MTLAdvDPParams(DPParams):
    alpha: float = Field(0.4, gt=0, le=10, description="weight of the business (utility) loss")
    gamma: float = Field(0.3, ge=0, le=10, description="weight of the restoration loss")
    beta_start: float = Field(0.1, ge=0, le=10, description="weight of the adversary term before half-time")
    beta_half: float = Field(0.3, ge=0, le=10, description="beta from half of training")
    beta_max: float = Field(0.5, ge=0, le=10)
    beta_step: float = Field(0.1, ge=0, le=10, description="raise per evaluation while V privacy accuracy is high "
                             "(the paper does not give the increment)")
    priv_acc_threshold: float = Field(0.6, ge=0, le=1, description="raise beta while the adversary's V accuracy >= this")
    pretrain_fraction: float = Field(0.5, gt=0, lt=1, description="share of steps for the three pretraining phases")
    perceptual_weight: float = Field(1.0, ge=0, le=100, description="weight of the perceptual term in R_Loss = "
                                     "MSE + w * perceptual (the paper gives none: 1 : 1)")
    perceptual: str = Field("synthface-perceptual-v1", description="the perceptual network: synthface-perceptual-v1 "
                            "(shipped) or torchscript:<path>")
    hidden: int = Field(256, ge=8, le=4096)


@methods.register("mtl_adv_dp")
class MTLAdvDP(DecouplingMethod):
    """MTL-Adv-DP (Gu & Abisado 2025): utility heads, a privacy classifier trained with DP-SGD as the
    adversary, and a restoration decoder on shared features; pretraining phases, then the adversarial game.

    The released encoder and its utility heads (the model track's backbone) minimise the business loss B
    (the backbone's base loss, utility CE) - (beta/alpha) * Adv + (gamma/alpha) * R: the paper's
    alpha*B - beta*Adv + gamma*R divided by alpha (same minimiser; the learning rate absorbs alpha). The
    adversary D (an MLP on the features, the sensitive attribute as a multi-class label) trains under DP-SGD;
    its ε covers D alone, conditional on the non-private encoder (the record says so): the release has no DP
    guarantee. The restorer R decodes the image from the features: R_Loss = MSE + perceptual_weight *
    perceptual (:mod:`decobench.models.perceptual`, the in-house network). Phases: business pretraining
    (the encoder), privacy pretraining (D), restoration pretraining (R), then all players on the same forward
    pass (the paper updates them in sequence). beta = beta_start, beta_half from half-time, then + beta_step per evaluation while D's V
    accuracy >= priv_acc_threshold, up to beta_max (a buffer: selection restores it with the weights).
    """

    Params = MTLAdvDPParams
    paper_lr = 1e-5
    tracks = ("model",)

    def __init__(self, spec, params=None):
        super().__init__(spec, params)
        d, h, shape = sum(spec.feature_dims), self.params.hidden, tuple(spec.extra.get("source_shape", (3, 32, 32)))
        self.shape = shape
        self.adversary["mlp"] = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, spec.n_sensitive))
        self.players["restorer"] = nn.ModuleDict({"net": nn.Sequential(
            nn.Linear(d, 2 * h), nn.ReLU(), nn.Linear(2 * h, int(torch.tensor(shape).prod())))})
        self.register_buffer("beta", torch.tensor(self.params.beta_start))
        # a frozen network outside every player (a tuple: not a registered submodule)
        self._perceptual = (perceptual_loss(self.params.perceptual),) if self.params.perceptual_weight else ()

    def optimizer_groups(self):
        return [OptimGroup("adversary", list(self.adversary.parameters()), dp=True, name="privacy_classifier"),
                OptimGroup("restorer", list(self.players["restorer"].parameters()), name="restorer")]

    @property
    def phases(self):
        f = self.params.pretrain_fraction / 3
        return [Phase("pretrain_business", f, ("generator",)), Phase("pretrain_privacy", f, ("adversary",)),
                Phase("pretrain_restoration", f, ("restorer",)),
                Phase("adversarial", 1 - 3 * f, ("generator", "adversary", "restorer"))]

    def adversary_logits(self, pooled):
        return self.adversary["mlp"](torch.cat(pooled, 1))

    def restore(self, features):
        return torch.tanh(self.players["restorer"]["net"](features)).view(len(features), *self.shape)

    def losses(self, ctx):
        p = self.params
        adv = F.cross_entropy(self.adversary_logits(ctx.pooled), ctx.sensitive_labels)
        out = self.restore(ctx.features)
        rec = F.mse_loss(out, ctx.source)
        # Under torch.func (the private adversary's per-example gradients) only the adversary's terms are read;
        # the frozen perceptual network's convolutions trip a functorch INTERNAL ASSERT ("escaped?") there
        # (torch 2.14), so the restorer's perceptual term is left out of that pass only.
        if self._perceptual and not torch._C._functorch.is_functorch_wrapped_tensor(out):
            rec = rec + p.perceptual_weight * self._perceptual[0].to(out.device)(out, ctx.source)
        return {"generator": {"neg_privacy_ce": -(self.beta / p.alpha) * adv, "restoration": (p.gamma / p.alpha) * rec},
                "adversary": {"privacy_ce": adv}, "restorer": {"restoration": rec}}

    def on_evaluate(self, evaluation):
        p = self.params
        if evaluation["progress"] >= 0.5:
            beta = max(float(self.beta), p.beta_half)
            acc = evaluation.get("val_adversary_acc")
            if acc is not None and acc >= p.priv_acc_threshold and float(self.beta) >= p.beta_half:
                beta = min(beta + p.beta_step, p.beta_max)
            self.beta.fill_(beta)
        return {"beta": float(self.beta)}
