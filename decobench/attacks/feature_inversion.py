"""``feature_inversion``: can an attacker holding the released encoder recover faces from their features?

Threat model (Xiao et al., AAAI 2020, the attacker's side of their game; the model track): the attacker
queries the released encoder (black box) on an auxiliary population of its own (``ModelRelease.auxiliary``:
same distribution, disjoint from every split), trains a decoder features -> image on those pairs and
applies it to the features of the data holder's private images. Scored on Test (people the model never
saw; the paper's T) with the same metrics as ``release_inversion`` (SSIM, PSNR, face similarity per FR
model, rank-1 re-identification against ``identity_gallery``, race accuracy of the fixed classifier, the
constant-reconstruction floor); the members' (training images') SSIM is a second, non-headline figure.

Decoder (:class:`FeatureDecoder`, the paper's Fig. 6 shape scaled to 32 px): standardised features ->
prior (the mean auxiliary image) + a linear map to pixels (10x learning rate) + FC -> 64 x H/4 x W/4 ->
two up-sampling conv blocks -> 3 channels; last layers zero-initialised, so training starts at the floor,
and the untrained decoder stays a candidate of the epoch selection (noise features cannot score below it).
Training, epoch selection on 15 % held-out auxiliary pairs, and quantisation to uint8 are
``release_inversion``'s (:func:`decobench.attacks.inversion.fit_decoder`). Pixel MSE only (the paper's
Table 2 attacker adds a perceptual term: no ImageNet VGG can be had here, and the in-house feature net is
the evaluator).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from decobench.attacks.base import Attack, AttackResult, CalibrationCase
from decobench.attacks.inversion import (FLOOR, NAMES, SSIM_NOTE, _to01, _to_uint8, fit_decoder, mean_metric,
                                         pixel_scores, score)
from decobench.attacks.metrics import LOWER, not_applicable
from decobench.registry import attacks


class FeatureDecoder(nn.Module):
    """Features [N, d] -> image in [0, 1] [N, 3, H, W] (H, W multiples of 4)."""

    def __init__(self, prior: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, c: int = 64):
        super().__init__()
        d, (_, h, w) = len(mean), prior.shape
        self.register_buffer("prior", prior[None].clone())
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.shape = (c, h // 4, w // 4)
        self.fc = nn.Sequential(nn.Linear(d, c * (h // 4) * (w // 4)), nn.ReLU())
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c, c // 2, 3, 1, 1), nn.ReLU(),
                                nn.Upsample(scale_factor=2), nn.Conv2d(c // 2, c // 4, 3, 1, 1), nn.ReLU())
        self.out = nn.Conv2d(c // 4, 3, 3, 1, 1)
        self.lin = nn.Linear(d, 3 * h * w)
        for m in (self.out, self.lin):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = (z - self.mean) / self.std
        conv = self.out(self.up(self.fc(z).view(len(z), *self.shape)))
        return self.prior + self.lin(z).view_as(conv) + conv


def invert_features(encode, aux_images: np.ndarray, private: list[np.ndarray], epochs: int, seed: int,
                    device="cpu") -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Train the decoder on (encode(aux), aux) pairs; reconstruct each array of ``private`` from its features.
    Returns (reconstructions per array, the constant floor image, info)."""
    t0 = time.time()
    z = encode(aux_images).float()
    y = _to01(aux_images)
    mu, sd = z.mean(0), z.std(0) + 1e-6
    decoder, info = fit_decoder(lambda prior: FeatureDecoder(prior, mu, sd), z.to(device), y.to(device), epochs,
                                seed, device, keep_initial=True)
    with torch.no_grad():
        recon = [np.concatenate([_to_uint8(decoder(encode(x[i:i + 256]).float().to(device)))
                                 for i in range(0, len(x), 256)]) for x in private]
    floor = np.round(aux_images.astype(np.float64).mean(0)).astype(np.uint8)
    info.update(aux_images=int(len(aux_images)), feature_dim=int(z.shape[1]), attack_s=round(time.time() - t0, 1))
    return recon, floor, info


@attacks.register("feature_inversion")
class FeatureInversion(Attack):
    """Feature inversion (Xiao et al.): a decoder trained on the attacker's own images through the released
    encoder reconstructs private faces from their features."""

    accepts = ("model",)
    version = "2"  # 2: the decoder trains on inversion_aux_images of the population, not all of it

    @classmethod
    def preflight(cls, cfg) -> None:
        from decobench.models.fr.zoo import check_available

        check_available(cfg.fr_models)

    def run(self, release) -> AttackResult:
        from decobench.models import face_features
        from decobench.models.fr.zoo import load_recognizer

        if release.auxiliary is None:
            reason = f"no auxiliary population: the attacker cannot make (features, image) pairs for {release.dataset}"
            return AttackResult({f"privacy_inversion_{m}": not_applicable(LOWER, reason) for m in NAMES},
                                info={"skipped": reason})
        cfg, seed, dev, t0 = self.ctx.cfg, self.ctx.seed, self.ctx.device, time.time()
        test, members = release.real["test"], release.members
        # the attacker's decoder budget: the last inversion_aux_images of its population (the model track lays
        # the population out as MIA padding, RMIA's population, then these: disjoint from what mia_model uses)
        aux_images = release.auxiliary.images[-cfg.inversion_aux_images:]
        (recon, recon_m), floor, info = invert_features(release.model.encode, aux_images,
                                                        [test.images, members.images], cfg.inversion_epochs, seed,
                                                        dev)
        net = face_features.load().to(dev)
        recs = [load_recognizer(n, dev) for n in cfg.fr_models]
        floors = np.repeat(floor[None], len(test.images), 0)
        metrics, reference, extra = score(recon, floors, test, release.identity_gallery, recs, net, cfg.bootstrap,
                                          seed, release.dataset, dev)
        metrics["privacy_inversion_ssim_members"] = mean_metric(
            pixel_scores(recon_m, members.images)[0], cfg.bootstrap, seed,
            "mean per-image SSIM on the training images (members) themselves", headline=False)
        info.update(extra, scored="test", fr_models=list(cfg.fr_models), wall_s=round(time.time() - t0, 1))
        return AttackResult(metrics, reference={"constant_floor": reference}, info=info)

    @classmethod
    def calibrate(cls, seed: int = 0, n_aux: int = 600, n_scored: int = 200, epochs: int = 8) -> list[CalibrationCase]:
        """Planted: the "encoder" is the image average-pooled to 8x8 (a leak a decoder can undo up to blur):
        SSIM's CI must clear the constant floor's by 0.05. Absent: features are noise independent of the image:
        SSIM within 0.02 of the floor (or CIs overlapping)."""
        from decobench.data.open import open_dataset
        from decobench.splits import load_split

        ds = open_dataset("synthfaces-a")
        aux_images, _ = ds.auxiliary(n_aux, 32)
        gen = load_split("synthfaces-a", "gen")
        ids = [gen[i] for i in np.sort(np.random.default_rng(seed).choice(len(gen), n_scored, replace=False))]
        images = ds.load_images(ids, 32)

        def pooled(x):
            return F.avg_pool2d(_to01(x), 4).flatten(1)

        g = torch.Generator().manual_seed(seed)

        def noise(x):  # a fresh draw per query, whatever the image
            return torch.randn(len(x), 64, generator=g)
        out = []
        for case, encode in (("planted", pooled), ("absent", noise)):
            (recon,), floor, _ = invert_features(encode, aux_images, [images], epochs, seed)
            m = mean_metric(pixel_scores(recon, images)[0], 1000, seed, SSIM_NOTE)
            f = mean_metric(pixel_scores(np.repeat(floor[None], len(images), 0), images)[0], 1000, seed,
                            FLOOR + SSIM_NOTE)
            if case == "planted":
                ok = m["ci"][0] > f["ci"][1] + 0.05
                expect = f"SSIM CI above the constant floor's ({f['value']:.3f}) by 0.05"
            else:
                ok = (m["ci"][0] <= f["ci"][1] and f["ci"][0] <= m["ci"][1]) or abs(m["value"] - f["value"]) <= 0.02
                expect = f"SSIM at the constant floor ({f['value']:.3f}): CIs overlap or within 0.02"
            out.append(CalibrationCase("feature_inversion", case, "ssim", m["value"], m["ci"], expect, bool(ok)))
        return out
