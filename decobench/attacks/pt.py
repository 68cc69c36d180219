"""``pt``: Privacy PT (DECO-Bench §3), the method's own trained adversary applied to G_real features.

Features are pooled LoRA features of G_real from the empty prompt at ``eval.feature_timestep`` (the
training-prompt figure is a second metric, ``..._train_prompt``). Methods without an adversary read n/a.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from decobench.attacks.base import Attack, AttackResult, CalibrationCase, accuracy_case
from decobench.attacks.metrics import LOWER, accuracy_metric, not_applicable
from decobench.registry import attacks


def adversary_predictions(adversary, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return adversary(features.float()).argmax(1).cpu()


@attacks.register("pt")
class TrainedAdversary(Attack):
    """Privacy PT: the method's trained adversary on LoRA features of G_real (null prompt)."""

    accepts = ("data",)
    version = "2"

    def run(self, release) -> AttackResult:
        s, cfg = release.sensitive, self.ctx.cfg
        k = release.n_classes[s]
        name = f"privacy_pt_{s}"
        if release.adversary is None:
            return AttackResult({name: not_applicable(LOWER, "this method has no adversary", 1 / k)})
        y = release.real["gen"].labels[s].to_numpy()
        metrics = {}
        for prompt, suffix in (("null", ""), ("train", "_train_prompt")):
            if ("gen", prompt) in release.features:
                pred = adversary_predictions(release.adversary, release.features[("gen", prompt)]).numpy()
                metrics[name + suffix] = accuracy_metric(
                    y, pred, k, LOWER, cfg.bootstrap, self.ctx.seed,
                    note=f"the method's adversary on G_real LoRA features ({prompt} prompt, t={cfg.feature_timestep})")
        return AttackResult(metrics)

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        g = torch.Generator().manual_seed(seed)
        n, d, k = 600, 16, 5
        y = torch.randint(0, k, (n,), generator=g)
        x = torch.randn(n, d, generator=g)
        x[:, :k] += 2.0 * F.one_hot(y, k).float()
        knows = torch.nn.Linear(d, k)  # an adversary that reads the planted coordinates
        blind = torch.nn.Linear(d, k)  # one that reads coordinates carrying nothing
        with torch.no_grad():
            knows.weight.zero_(), knows.bias.zero_(), blind.bias.zero_()
            knows.weight[:, :k] = torch.eye(k)
            blind.weight.copy_(torch.randn(k, d, generator=g))
            blind.weight[:, :k] = 0
        out = []
        for case, adv in (("planted", knows), ("absent", blind)):
            m = accuracy_metric(y.numpy(), adversary_predictions(adv, x).numpy(), k, LOWER, 500, seed)
            out.append(accuracy_case("pt", case, m))
        return out
