"""``identity_linkage``: can a released image be traced back to the person whose photo it came from?

Each released image is a probe in a 1:N search (cosine similarity of face-recognition embeddings)
against a gallery holding one *other* real image of every released identity (never a released image's
source) plus distractor images of people outside the release. Reported per FR model (``eval.fr_models``):
rank-1 and rank-5 re-identification, with the same search run with the real source images as probes
(the unprotected rate, a reference) and chance (k / gallery size). The headline figures are those of
the first listed model; the others are in the result as non-headline metrics. Datasets without
identities (FairFace, UTKFace) get n/a with the reason.
"""

from __future__ import annotations

import numpy as np

from decobench.attacks.base import Attack, AttackResult, CalibrationCase
from decobench.attacks.metrics import LOWER, bootstrap_ci, not_applicable
from decobench.evaluation.identification import match_ranks
from decobench.registry import attacks

KS = (1, 5)


def rate_metric(ranks: np.ndarray, k: int, gallery_size: int, resamples: int, seed: int, headline: bool) -> dict:
    hit = (ranks < k).astype(np.float64)
    ci = bootstrap_ci(lambda i: hit[i].mean(), len(hit), resamples, seed)
    chance = min(1.0, k / gallery_size)
    return {"value": float(hit.mean()), "direction": LOWER, "chance": chance, "ci": ci,
            "ci_includes_chance": ci[0] <= chance <= ci[1], "n": int(len(hit)), "gallery": int(gallery_size), "unit": "fraction",
            "headline": headline}


def linkage(recognizers, probes: np.ndarray, sources: np.ndarray, probe_ids, gallery, resamples: int, seed: int):
    """Metrics of released probes and the reference (real sources as probes), per recognizer."""
    metrics, reference, info = {}, {}, {}
    gallery_ids = gallery.labels["identity"].to_numpy()
    for j, rec in enumerate(recognizers):
        g = rec.embed(gallery.images)
        names = {k: f"privacy_linkage_rank{k}" + ("" if j == 0 else f"_{rec.name}") for k in KS}
        for imgs, out in ((probes, metrics), (sources, reference)):
            ranks = match_ranks(rec.embed(imgs), probe_ids, g, gallery_ids)
            for k, name in names.items():
                out[name] = rate_metric(ranks, k, len(gallery_ids), resamples, seed, headline=j == 0)
                if j == 0:
                    out[name]["fr_model"] = rec.name
        info[rec.name] = {**{f"rank{k}": metrics[n]["value"] for k, n in names.items()},
                          **{f"unprotected_rank{k}": reference[n]["value"] for k, n in names.items()}}
    return metrics, reference, info


@attacks.register("identity_linkage")
class IdentityLinkage(Attack):
    """1:N re-identification of released images against other real photos of the same people."""

    accepts = ("data",)
    version = "1"

    @classmethod
    def preflight(cls, cfg) -> None:
        from decobench.models.fr.zoo import check_available

        check_available(cfg.fr_models)

    def run(self, release) -> AttackResult:
        from decobench.models.fr.zoo import load_recognizer, weights_sha256

        gallery = release.identity_gallery
        if gallery is None:
            reason = f"{release.dataset} has no identity labels"
            return AttackResult({f"privacy_linkage_rank{k}": not_applicable(LOWER, reason) for k in KS},
                                info={"skipped": reason})
        sources = release.real["train_on"]
        if list(sources.ids) != list(release.released.ids):
            raise RuntimeError("released images and their real sources are not aligned")
        keep = np.isin(sources.labels["identity"].to_numpy(), gallery.labels["identity"].to_numpy())
        recs = [load_recognizer(n, self.ctx.device) for n in self.ctx.cfg.fr_models]
        metrics, reference, info = linkage(recs, release.released.images[keep], sources.images[keep],
                                           sources.labels["identity"].to_numpy()[keep], gallery,
                                           self.ctx.cfg.bootstrap, self.ctx.seed)
        return AttackResult(metrics, reference={"real_source": reference},
                            info={"per_model": info, "probes": int(keep.sum()), "probes_without_gallery_match":
                                  int((~keep).sum()), "gallery": len(gallery.ids),
                                  "fr_weights_sha256": {n: weights_sha256(n) for n in self.ctx.cfg.fr_models}})

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        """Identity release (returns its input) reads the unprotected rate; a release that ignores its
        input (every probe the same unrelated face) reads chance."""
        from decobench.data.open import open_dataset
        from decobench.models.fr.zoo import ZOO, load_recognizer
        from decobench.splits import load_split

        ds = open_dataset("synthfaces-a")
        rec = ds.records
        gen = rec.iloc[ds.index_of(load_split("synthfaces-a", "gen"))]
        rng = np.random.default_rng(seed)
        people = rng.choice(gen["identity"].unique(), 300, replace=False)
        rows = gen[gen["identity"].isin(people)].groupby("identity").head(2)
        probe_rows, gal_rows = rows.groupby("identity").nth(0), rows.groupby("identity").nth(1)
        test = rec.iloc[ds.index_of(load_split("synthfaces-a", "test")[:2000])]
        gal_ids = list(gal_rows["image_id"]) + list(test["image_id"])
        from decobench.attacks.base import RealSplit

        gallery = RealSplit(ds.load_images(gal_ids, 32), rec.iloc[ds.index_of(gal_ids)].reset_index(drop=True), gal_ids)
        src = ds.load_images(list(probe_rows["image_id"]), 32)
        ids = probe_rows["identity"].to_numpy()
        other = np.repeat(ds.load_images([test["image_id"].iloc[0]], 32), len(src), 0)
        r = [load_recognizer(ZOO[0].name)]
        out = []
        for case, probes in (("planted", src), ("absent", other)):
            m, ref, _ = linkage(r, probes, src, ids, gallery, 1000, seed)
            m1, ref1 = m["privacy_linkage_rank1"], ref["privacy_linkage_rank1"]
            if case == "planted":
                ok = abs(m1["value"] - ref1["value"]) < 1e-12 and m1["ci"][0] > m1["chance"]
                expect = "equals the unprotected rate, CI above chance"
            else:
                ok = m1["ci"][0] <= m1["chance"] + 1.0 / len(ids)
                expect = "CI reaches chance (at most one probe of the constant face can hit)"
            out.append(CalibrationCase("identity_linkage", case, "rank1", m1["value"], m1["ci"], expect, bool(ok)))
        return out
