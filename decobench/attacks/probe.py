"""``probe``: a fresh linear probe of the sensitive attribute on the released model's LoRA features.

For every method alike: logistic regression trained from scratch on pooled LoRA features of G_real and
scored on features of Test. Features come from the *empty* prompt at a fixed timestep (``eval.
feature_timestep``), so the probe measures what the image latents carry, not the text; the figure with
the training prompt is a second, named metric (``..._train_prompt``) when those features exist.
On the model track the features are the released encoder's, of the same real G and Test images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from decobench.attacks.base import Attack, AttackResult, CalibrationCase, accuracy_case
from decobench.attacks.metrics import LOWER, accuracy_metric
from decobench.registry import attacks


def fit_linear_probe(train_x, train_y, n_classes: int, epochs: int = 200, seed: int = 0):
    """Full-batch multinomial logistic regression (AdamW, standardised inputs); returns predict(x)."""
    torch.manual_seed(seed)
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    lin = torch.nn.Linear(train_x.shape[1], n_classes)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    xtr = (train_x - mu) / sd
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(lin(xtr), train_y).backward()
        opt.step()

    @torch.no_grad()
    def predict(x):
        return lin((x - mu) / sd).argmax(1)
    return predict


@attacks.register("probe")
class LinearProbe(Attack):
    """Fresh linear probe of the sensitive attribute on LoRA features (G_real -> Test), null prompt."""

    accepts = ("data", "model")
    version = "2"

    def run(self, release) -> AttackResult:
        s, cfg = release.sensitive, self.ctx.cfg
        k = release.n_classes[s]
        ytr = torch.tensor(release.real["gen"].labels[s].to_numpy())
        yte = release.real["test"].labels[s].to_numpy()
        if release.kind == "model":
            features = {(split, "null"): release.model.encode(release.real[split].images) for split in ("gen", "test")}
        else:
            features = release.features
        metrics = {}
        for prompt, suffix in (("null", ""), ("train", "_train_prompt")):
            if ("gen", prompt) not in features:
                continue
            predict = fit_linear_probe(features[("gen", prompt)].float(), ytr, k, cfg.probe_epochs, self.ctx.seed)
            pred = predict(features[("test", prompt)].float()).numpy()
            what = ("the released encoder's features" if release.kind == "model" else
                    f"LoRA features ({prompt} prompt, t={cfg.feature_timestep})")
            metrics[f"privacy_probe_{s}{suffix}"] = accuracy_metric(
                yte, pred, k, LOWER, cfg.bootstrap, self.ctx.seed, note=f"linear probe on {what}: G_real -> Test")
        return AttackResult(metrics)

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        g = torch.Generator().manual_seed(seed)
        n, d, k = 1200, 64, 5
        y = torch.randint(0, k, (n,), generator=g)
        noise = torch.randn(n, d, generator=g)
        planted = noise.clone()
        planted[:, :k] += 1.5 * F.one_hot(y, k).float()  # a linear leak of moderate strength
        out = []
        for case, x in (("planted", planted), ("absent", noise)):
            predict = fit_linear_probe(x[:800], y[:800], k, 200, seed)
            m = accuracy_metric(y[800:].numpy(), predict(x[800:]).numpy(), k, LOWER, 500, seed)
            out.append(accuracy_case("probe", case, m))
        return out
