"""Privacy PT and a fresh linear probe on LoRA features.

PT (DECO-Bench §3): the method's trained adversary applied to features of G_real. Methods without an
adversary read "n/a". The probe, for every method alike: a linear classifier trained from scratch on
features of G_real and tested on features of Test, so the column compares methods on equal terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adversary_accuracy(method, features: torch.Tensor, dims: list[int], race: torch.Tensor) -> float | None:
    parts = list(torch.split(features, dims, dim=1))
    with torch.no_grad():
        logits = method.adversary_logits([p.to(next(method.parameters()).device) if list(method.parameters())
                                          else p for p in parts])
    if logits is None:
        return None
    return float((logits.argmax(1).cpu() == race).float().mean())


def linear_probe_accuracy(train_x, train_y, test_x, test_y, n_classes: int, epochs: int = 200,
                          seed: int = 0) -> float:
    """Full-batch logistic regression (AdamW, standardised inputs) -> test accuracy."""
    torch.manual_seed(seed)
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    lin = torch.nn.Linear(xtr.shape[1], n_classes)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(lin(xtr), train_y).backward()
        opt.step()
    with torch.no_grad():
        return float((lin(xte).argmax(1) == test_y).float().mean())
