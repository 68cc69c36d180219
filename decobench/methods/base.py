"""The public interface every decoupling method implements (v2), built-in or third-party.

A method is one ``nn.Module`` subclass. Each training step the trainer hands it a :class:`StepContext`
(clean and noisy latents, timestep, noise, the UNet's prediction, spatial and pooled features of the
adapted layers, every label the dataset has, the sensitive attribute's name, step, epoch, phase) and
the method returns named loss terms *per player*::

    def losses(self, ctx):
        logits = self.adversary["fc"](ctx.pooled)
        ce = F.cross_entropy(logits, ctx.sensitive_labels)
        return {"generator": {"neg_adversary_ce": -self.params.adv_weight * ce},
                "adversary": {"adversary_ce": ce}}

Players are optimised separately: each player's total loss is differentiated only with respect to its
own parameters (``torch.autograd.grad``), so an adversary term never moves the LoRA and a generator
term never trains the adversary, without the method having to detach anything. The ``generator``
player always owns the LoRA adapters and always has the diffusion MSE in its loss.

A method declares:

* ``Params`` — a pydantic model of its hyperparameters; ``--set method.<key>=<value>`` is parsed and
  range-checked against it, hashed into the cache key and written into the result.
* ``players`` — ``{player: nn.ModuleDict}``; every parameter of the method must belong to exactly one
  player (a bare ``nn.Parameter`` outside them is an error, never silently frozen).
* ``optimizer_groups()`` — one :class:`OptimGroup` per parameter group: player, parameters,
  learning-rate multiplier, weight decay, and ``dp=True`` for groups that train under DP-SGD.
* ``dp_backbone`` — ``True`` when the parameters the trainer owns and releases (the LoRA adapters) train
  under DP-SGD too; DP methods' ``Params`` subclass :class:`DPParams` (ε target or noise multiplier, δ,
  clipping norm, accountant). All DP groups are clipped jointly and noised once per step (one Gaussian
  mechanism, one accountant step); see :mod:`decobench.run.dp`. Their losses must decompose per example.
* ``tracks`` — the release tracks the method runs on (``data``, ``model``, ``cloak``).
* ``phases`` — an ordered schedule of :class:`Phase` (a fraction of the step budget each, and which
  players step in it); the default is one ``joint`` phase in which every player steps.
* ``on_evaluate(evaluation)`` — optional: react to each evaluation on V (a loss-weight schedule).
* ``adversary_logits(pooled)`` — optional: the trained adversary's logits for Privacy PT.
* ``transform_first(h)`` — optional: replace the first adapted layer's output (CE+Mask's FGN); it is
  applied in training and, by a hook, at release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

GENERATOR = "generator"


class MethodParams(BaseModel):
    """Base of every method's hyperparameters: typed, range-checked, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DPParams(MethodParams):
    """DP-SGD settings of a method with DP groups. ``target_epsilon``: the noise multiplier is solved by the
    accountant so that the whole planned run spends at most this ε at ``delta``; ``none`` uses
    ``noise_multiplier`` as given (0: clipping without noise, no privacy, ε = ∞)."""

    target_epsilon: float | None = Field(5.0, gt=0, le=1000, description="total ε over the run at delta")
    noise_multiplier: float | None = Field(None, ge=0, le=1000, description="z (noise std / clipping norm); "
                                           "used when target_epsilon is none")
    delta: float = Field(1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0, description="per-example clipping norm S, over all DP groups jointly")
    accountant: Literal["prv", "rdp"] = "prv"
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="what steps the private players on the noisy "
                                               "gradient (post-processing: same ε); DPLH's paper uses plain SGD")
    secure_rng: bool = Field(False, description="draw the Poisson batches and the noise from generators seeded by "
                             "os.urandom, with Opacus's floating-point-safe noise: ε then holds without a secret "
                             "seed, and the run is not reproducible (default: seeded, benchmark mode)")

    @model_validator(mode="after")
    def _one_source_of_noise(self):
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("give exactly one of method.target_epsilon and method.noise_multiplier "
                             "(set the other to none)")
        return self


@dataclass
class StepContext:
    """What a method sees at one training (or validation) step."""

    spatial: list[torch.Tensor]      # outputs of the adapted layers (the trunk's feature maps), [B, C_i, h_i, w_i]
    pooled: list[torch.Tensor]       # their adaptive-average-pooled outputs, [B, C_i]
    labels: dict[str, torch.Tensor]  # every label the dataset has (race, gender, age, identity, pose...)
    sensitive: str                   # name of the sensitive attribute (--sensitive)
    latents: torch.Tensor | None = None        # data track: clean latents x0 (scaled), [B, C, h, w]
    noisy_latents: torch.Tensor | None = None  # x_t
    timesteps: torch.Tensor | None = None      # t, [B]
    noise: torch.Tensor | None = None          # the epsilon added
    prediction: torch.Tensor | None = None     # the UNet's epsilon prediction
    images: torch.Tensor | None = None         # model track: the input images, [B, 3, H, W] in [-1, 1]
    base_losses: dict[str, torch.Tensor] | None = None  # the backbone's base loss by component (set by the
    # trainer before ``losses``: {"mse"} on the data track, {"<utility>_ce"} on the model track), for methods
    # that weigh it (DPLH's learned uncertainty weights); the trainer always adds the unweighted base loss
    step: int = 0
    epoch: int = 0
    phase: str = "joint"
    training: bool = True

    @property
    def sensitive_labels(self) -> torch.Tensor:
        return self.labels[self.sensitive]

    @property
    def source(self) -> torch.Tensor:
        """What the released part saw of each example: the images (model track) or clean latents (data track)."""
        return self.images if self.images is not None else self.latents

    @property
    def features(self) -> torch.Tensor:
        """The pooled features of every adapted layer, concatenated: DECO-Bench's LoRA features."""
        return torch.cat(self.pooled, dim=1)


@dataclass
class OptimGroup:
    player: str
    params: list[nn.Parameter]
    lr_scale: float = 1.0            # times the player's learning rate from the run config
    weight_decay: float | None = None  # None: the run config's
    dp: bool = False                 # train this group with DP-SGD (per-sample clipping + noise)
    name: str = ""


@dataclass(frozen=True)
class Phase:
    name: str
    fraction: float                  # share of the step budget
    players: tuple[str, ...]         # players that step in this phase


@dataclass
class MethodSpec:
    """What the runner tells a method about the model and data it will train on."""

    feature_dims: list[int]          # channels of each adapted layer
    n_classes: dict[str, int]        # classes of every categorical label, e.g. {"race": 5, "gender": 2, ...}
    sensitive: str = "race"
    utility: tuple[str, ...] = ("age", "gender")
    extra: dict = field(default_factory=dict)    # "source_shape": the shape of StepContext.source per example

    @property
    def n_sensitive(self) -> int:
        return self.n_classes[self.sensitive]


class DecouplingMethod(nn.Module):
    """Base class. Subclasses set ``Params``, build modules in ``__init__`` and override ``losses``."""

    Params: type[MethodParams] = MethodParams
    #: DECO-Bench A.3 LoRA learning rate for the paper profile
    paper_lr: float = 1e-5
    #: bump when the method's behaviour changes: it enters the cache key of trained stages
    version: str = "1"
    #: release tracks the method runs on
    tracks: tuple[str, ...] = ("data",)
    #: the trainer-owned released parameters (the LoRA adapters) train under DP-SGD (Params: DPParams)
    dp_backbone: bool = False
    #: labels the method reads beyond the usual attributes ("landmarks", "pose": model track, SynthFaces);
    #: the runner supplies them or stops with an error saying the dataset lacks them
    needs: tuple[str, ...] = ()

    @classmethod
    def nonfaces(cls, params, n_faces: int) -> int:
        """How many non-face patches to add to the training set of ``n_faces`` faces (DPLH's detection task;
        they carry ``face`` = 0 and -1 for every other label). Default none."""
        return 0

    def __init__(self, spec: MethodSpec, params: MethodParams | None = None):
        super().__init__()
        self.spec = spec
        self.params = params if params is not None else self.Params()
        self.players = nn.ModuleDict({GENERATOR: nn.ModuleDict(), "adversary": nn.ModuleDict()})

    # convenient names for the two usual players
    @property
    def generator(self) -> nn.ModuleDict:
        return self.players[GENERATOR]

    @property
    def adversary(self) -> nn.ModuleDict:
        return self.players["adversary"]

    # -- what the trainer calls ------------------------------------------------------------------
    def forward(self, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
        """``losses``: lets ``torch.func.functional_call`` run a method on given parameters (DP-SGD)."""
        return self.losses(ctx)

    def losses(self, ctx: StepContext) -> dict[str, dict[str, torch.Tensor]]:
        """Named loss terms per player; the generator's diffusion MSE is added by the trainer."""
        return {}

    def optimizer_groups(self) -> list[OptimGroup]:
        return [OptimGroup(p, list(m.parameters()), name=p) for p, m in self.players.items()
                if any(True for _ in m.parameters())]

    @property
    def phases(self) -> list[Phase]:
        return [Phase("joint", 1.0, tuple(self.players))]

    def on_evaluate(self, evaluation: dict) -> dict | None:
        """Called after each evaluation on V (``val_adversary_acc``, ``progress`` = step / max_steps, ...):
        a schedule that reacts to V (MTL-Adv-DP's β) lives here; what it returns is logged in the history.
        State it changes must be a buffer, so checkpoint selection restores it with the weights."""
        return None

    def adversary_logits(self, pooled: list[torch.Tensor]) -> torch.Tensor | None:
        """The trained adversary's logits of the sensitive attribute (Privacy PT); None: no adversary."""
        return None

    def transform_first(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def uses_transform(self) -> bool:
        return type(self).transform_first is not DecouplingMethod.transform_first

    def has_adversary(self) -> bool:
        return type(self).adversary_logits is not DecouplingMethod.adversary_logits

    @classmethod
    def trains_privately(cls) -> bool:
        """Some of its players train under DP-SGD (its Params carry the DP settings)."""
        return cls.dp_backbone or issubclass(cls.Params, DPParams)


def method_check(obj) -> str | None:
    if not (isinstance(obj, type) and issubclass(obj, DecouplingMethod)):
        return "a method plugin must be a subclass of decobench.methods.base.DecouplingMethod"
    if not (isinstance(obj.Params, type) and issubclass(obj.Params, MethodParams)):
        return "its Params must subclass decobench.methods.base.MethodParams (a pydantic model)"
    if not obj.tracks or not set(obj.tracks) <= {"data", "model", "cloak"}:
        return f"tracks must name release tracks among data, model, cloak (got {obj.tracks!r})"
    return None
