"""Privacy-Commons protection: is the cloaked person still found by 1:N search?

For every identity and every ordered pair (i, j), i != j, of its 5 test images: the probe is test image i
cloaked with the identity's mask; the gallery is the *clean* test image j plus every distractor. Cosine
similarity of L2-normalised target features; the probe is hit@k when fewer than k distractors score at
least as high as its mate (ties count against the cloak). Protection success@k = 1 - hit rate@k; the
unprotected rate (clean probe i) is computed the same way beside it. CIs resample identities (an identity's
20 queries are not independent).
"""

from __future__ import annotations

import numpy as np
import torch

from decobench.attacks.metrics import bootstrap_ci

KS = (1, 5)


def _ranks(probe: torch.Tensor, clean: torch.Tensor, distractors: torch.Tensor) -> torch.Tensor:
    """probe, clean: [I, m, d]; distractors: [D, d] -> ranks [I, m, m] (diagonal unused)."""
    mate = probe @ clean.transpose(1, 2)                              # [I, m(i), m(j)]
    out = torch.empty(mate.shape, dtype=torch.long)
    for lo in range(0, len(probe), 64):
        sims = probe[lo:lo + 64] @ distractors.T                      # [b, m, D]
        sorted_sims = sims.sort(-1).values
        # distractors scoring >= the mate's similarity
        ge = sorted_sims.shape[-1] - torch.searchsorted(sorted_sims, mate[lo:lo + 64].contiguous(), right=False)
        out[lo:lo + 64] = ge
    return out


def hits(probe_emb, clean_emb, distractor_emb) -> np.ndarray:
    """[I, m, d] x2, [D, d] -> per identity and k, the hit rate over its m(m-1) queries: [I, len(KS)]."""
    ranks = _ranks(probe_emb.float(), clean_emb.float(), distractor_emb.float())
    m = ranks.shape[1]
    off = ~torch.eye(m, dtype=torch.bool)
    return np.stack([(ranks[:, off] < k).float().mean(1).numpy() for k in KS], axis=1)


def rate(per_identity: np.ndarray, resamples: int, seed: int) -> tuple[float, list[float]]:
    ci = bootstrap_ci(lambda i: per_identity[i].mean(), len(per_identity), resamples, seed)
    return float(per_identity.mean()), ci


def embed_people(recognizer, images: np.ndarray) -> torch.Tensor:
    """uint8 [I, m, H, W, 3] -> [I, m, d]."""
    I, m = images.shape[:2]
    return recognizer.embed(images.reshape(I * m, *images.shape[2:])).reshape(I, m, -1)
