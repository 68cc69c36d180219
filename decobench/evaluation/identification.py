"""1:N face identification and verification on embeddings (shared by the FR zoo and the attacks).

Cosine similarity of L2-normalised embeddings; a probe's rank is the number of gallery entries of
*other* identities scoring strictly higher than its best true match (ties count against the probe:
rank-1 only when the true match is strictly best), so the figures never flatter a method.
"""

from __future__ import annotations

import numpy as np
import torch


def match_ranks(probe: torch.Tensor, probe_ids, gallery: torch.Tensor, gallery_ids, chunk: int = 1024) -> np.ndarray:
    """0-based rank of each probe's best true match in the gallery (len(gallery) when it has none)."""
    probe = torch.nn.functional.normalize(probe.float(), dim=1)
    gallery = torch.nn.functional.normalize(gallery.float(), dim=1)
    pid = torch.as_tensor(np.asarray(probe_ids).astype(np.int64))
    gid = torch.as_tensor(np.asarray(gallery_ids).astype(np.int64))
    out = []
    for i in range(0, len(probe), chunk):
        sims = probe[i:i + chunk] @ gallery.T
        same = pid[i:i + chunk, None] == gid[None, :]
        best_true = torch.where(same, sims, torch.full_like(sims, -torch.inf)).max(1).values
        others_ge = ((sims >= best_true[:, None]) & ~same).sum(1)
        ranks = torch.where(torch.isinf(best_true), torch.full_like(others_ge, len(gallery)), others_ge)
        out.append(ranks.numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def hit_rates(ranks: np.ndarray, ks=(1, 5)) -> dict[int, float]:
    return {k: float((ranks < k).mean()) for k in ks}


def attribute_only_ranks(probe_attrs: np.ndarray, probe_ids, gallery_attrs: np.ndarray, gallery_ids,
                         seed: int = 0) -> np.ndarray:
    """The floor: a matcher that knows only attributes (race, gender, age) and breaks ties at random.

    Each probe ranks the gallery entries sharing its attributes first, in random order."""
    rng = np.random.default_rng(seed)
    key = lambda a: np.array(["/".join(map(str, r)) for r in a])  # noqa: E731
    pk, gk = key(probe_attrs), key(gallery_attrs)
    gid = np.asarray(gallery_ids)
    ranks = np.empty(len(pk), np.int64)
    for i, (k, p) in enumerate(zip(pk, probe_ids)):
        cand = gk == k
        true = cand & (gid == p)
        if not true.any():
            ranks[i] = len(gid)
            continue
        # random order inside the candidate set: rank of the first true entry
        order = rng.permutation(int(cand.sum()))
        pos = order[np.flatnonzero(true[cand])]
        ranks[i] = int(pos.min())
    return ranks


def verification_accuracy(emb: torch.Tensor, ids, n_pairs: int, seed: int, threshold: float | None = None):
    """Accuracy on ``n_pairs`` same-identity and as many different-identity pairs.

    ``threshold`` None: choose the best one on these pairs (use it on validation identities only),
    returns (accuracy, threshold)."""
    rng = np.random.default_rng(seed)
    ids = np.asarray(ids)
    emb = torch.nn.functional.normalize(emb.float(), dim=1)
    by_id = {}
    for i, p in enumerate(ids):
        by_id.setdefault(p, []).append(i)
    people = [p for p, v in by_id.items() if len(v) >= 2]
    pos = [tuple(rng.choice(by_id[people[rng.integers(len(people))]], 2, replace=False)) for _ in range(n_pairs)]
    neg = []
    while len(neg) < n_pairs:
        a, b = rng.integers(0, len(ids), 2)
        if ids[a] != ids[b]:
            neg.append((a, b))
    pairs = np.array(pos + neg)
    same = np.r_[np.ones(n_pairs, bool), np.zeros(n_pairs, bool)]
    sims = (emb[pairs[:, 0]] * emb[pairs[:, 1]]).sum(1).numpy()
    if threshold is None:
        cands = np.sort(sims)
        accs = [((sims >= t) == same).mean() for t in cands[::max(1, len(cands) // 400)]]
        threshold = float(cands[::max(1, len(cands) // 400)][int(np.argmax(accs))])
    return float(((sims >= threshold) == same).mean()), threshold


def identity_gallery(ds, released_ids: list[str], distractor_ids: list[str], size: int):
    """A 1:N gallery (RealSplit): one other real image of each released identity (never a released image)
    plus distractors (``distractor_ids`` of people outside the release). None: the dataset has no identities."""
    rec = ds.records
    if "identity" not in rec or (rec["identity"] < 0).any():
        return None
    released = set(released_ids)
    people = set(rec["identity"].iloc[ds.index_of(released_ids)])
    others = rec[rec["identity"].isin(people) & ~rec["image_id"].isin(released)]
    others = others.sample(frac=1.0, random_state=0).drop_duplicates("identity").sort_values("image_id")
    distractors = rec.iloc[ds.index_of(distractor_ids)]
    ids = list(others["image_id"]) + list(distractors.loc[~distractors["identity"].isin(people), "image_id"])
    rows = rec.iloc[ds.index_of(ids)].reset_index(drop=True)
    from decobench.attacks.base import RealSplit  # the release types live with the attacks

    return RealSplit(ds.load_images(ids, size), rows, ids)
