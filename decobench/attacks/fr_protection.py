"""``fr_protection``: Privacy-Commons identification of cloaked people by a zoo of face-recognition models.

Per target model (every zoo model, plus dlib's descriptor when installed): hit rate @1 and @5 of the
cloaked probes (:mod:`decobench.cloaks.protocol`; protection success = 1 - hit rate), with the same
search for clean probes as the reference (the unprotected rate). Headline figures: the mean hit rates
over the black-box targets (every target but the surrogate) and the white-box rate (the surrogate
itself); the image cost of the cloak: PSNR and SSIM of the cloaked test photos against the clean ones
(torchmetrics, data range 255, per image; PSNR capped at 100 dB for untouched images). CIs resample identities.

Calibration (known answers, on 40 identities and 2,000 distractors): a white-box FI-UAP cloak on
``resnet-arcface`` must protect (white-box top-1 protection >= 80 %), and an absent cloak must not: with
eps = 0 protection is exactly 1 - the unprotected rate, and uniform noise of +-8 grey levels keeps the
hit rate within 10 points of it.
"""

from __future__ import annotations

import numpy as np
import torch

from decobench.attacks.base import Attack, AttackResult, CalibrationCase
from decobench.cloaks.protocol import KS, embed_people, hits, rate
from decobench.registry import attacks

LOWER, HIGHER = "lower_is_better", "higher_is_better"
PSNR_CAP = 100.0  # dB: an untouched image (eps = 0) reads 100, not infinity


def targets() -> list[str]:
    """Every zoo model, and dlib when ``face-recognition-models`` and ``dlib`` are installed."""
    from decobench.models.fr.zoo import ZOO

    names = [s.name for s in ZOO]
    import importlib.util

    if importlib.util.find_spec("dlib") and importlib.util.find_spec("face_recognition_models"):
        names.append("dlib")
    return names


def _rate_metric(per_id: np.ndarray, k: int, gallery: int, resamples: int, seed: int, headline: bool) -> dict:
    value, ci = rate(per_id, resamples, seed)
    chance = min(1.0, k / gallery)
    return {"value": value, "direction": LOWER, "chance": chance, "ci": ci, "ci_includes_chance": ci[0] <= chance <= ci[1],
            "n": int(len(per_id)), "unit": "fraction", "headline": headline, "gallery": gallery}


def image_quality(clean: np.ndarray, cloaked: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image PSNR and SSIM (uint8 [N, H, W, 3], data range 255)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a = torch.from_numpy(clean).permute(0, 3, 1, 2).float()  # float64 convolutions are 30x slower on CPU
    b = torch.from_numpy(cloaked).permute(0, 3, 1, 2).float()
    psnr = peak_signal_noise_ratio(b, a, data_range=255.0, reduction="none", dim=(1, 2, 3)).clamp(max=PSNR_CAP)
    ssim = structural_similarity_index_measure(b, a, data_range=255.0, reduction="none")
    return {"psnr": psnr.numpy(), "ssim": ssim.numpy()}


def clean_embeddings(rec, data, cache=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's features of the clean test photos [I, 5, d] and the distractors [D, d]; the same for every
    cloak on these people, so cached by (target, its weights, the people) when a stage cache is given (dlib
    embeds about 50 images a second on one CPU thread)."""
    if cache is None:
        return embed_people(rec, data.test), rec.embed(data.distractors)
    from safetensors.torch import load_file, save_file

    from decobench.models.fr.zoo import weights_sha256

    inputs = {"target": rec.name, "weights": weights_sha256(rec.name) or rec.name, "people": data.fingerprint()}
    with cache.stage("fr_clean_embeddings", inputs) as (folder, cached):
        if not cached:
            save_file({"test": embed_people(rec, data.test).contiguous(),
                       "distractors": rec.embed(data.distractors).contiguous()}, str(folder / "embeddings.safetensors"))
        t = load_file(str(folder / "embeddings.safetensors"))
    return t["test"], t["distractors"]


def protection(data, masks: torch.Tensor, surrogate: str, target_names, resamples: int, seed: int,
               recognizers: dict | None = None, cache=None) -> AttackResult:
    from decobench.cloaks.craft import apply_mask
    from decobench.models.fr.zoo import load_recognizer

    cloaked = apply_mask(data.test, masks)
    gallery = len(data.distractors) + 1
    metrics, unprotected, info = {}, {}, {"targets": {}, "queries": int(len(data.identities) * 20), "gallery": gallery,
                                        "surrogate": surrogate}
    per_target = {}
    for t in target_names:
        rec = (recognizers or {}).get(t) or load_recognizer(t)
        clean, dis = clean_embeddings(rec, data, cache)
        got, base = hits(embed_people(rec, cloaked), clean, dis), hits(clean, clean, dis)
        per_target[t] = (got, base)
        for j, k in enumerate(KS):
            metrics[f"privacy_fr_top{k}_{t}"] = _rate_metric(got[:, j], k, gallery, resamples, seed, False)
            unprotected[f"privacy_fr_top{k}_{t}"] = _rate_metric(base[:, j], k, gallery, resamples, seed, False)
        info["targets"][t] = {"white_box": t == surrogate, **{f"protection_top{k}": 1 - float(got[:, j].mean())
                                                              for j, k in enumerate(KS)},
                              **{f"unprotected_top{k}": float(base[:, j].mean()) for j, k in enumerate(KS)}}
    black = [t for t in per_target if t != surrogate]
    for j, k in enumerate(KS):
        for name, group in (("blackbox", black), ("whitebox", [surrogate] if surrogate in per_target else [])):
            if group:
                for out, pick in ((metrics, 0), (unprotected, 1)):
                    per_id = np.mean([per_target[t][pick][:, j] for t in group], axis=0)
                    out[f"privacy_fr_top{k}_{name}"] = _rate_metric(per_id, k, gallery, resamples, seed, True)
                    if name == "blackbox":
                        out[f"privacy_fr_top{k}_{name}"]["note"] = f"mean over {len(group)} black-box targets"
    q = image_quality(data.test.reshape(-1, *data.test.shape[2:]), cloaked.reshape(-1, *cloaked.shape[2:]))
    for name, v in q.items():
        per_id = v.reshape(len(data.identities), -1).mean(1)
        value, ci = rate(per_id, resamples, seed)
        metrics[f"utility_{name}"] = {"value": value, "direction": HIGHER, "chance": None, "ci": ci,
                                      "n": int(len(per_id)), "note": "cloaked vs clean test photos"}
    info["max_pixel_change"] = int(np.abs(cloaked.astype(int) - data.test.astype(int)).max())
    return AttackResult(metrics, {"real_source": unprotected}, info)  # clean photos as probes: the unprotected rate


@attacks.register("fr_protection")
class FRProtection(Attack):
    """Privacy-Commons protection: 1:N identification of cloaked people by the FR zoo (top-1/top-5)."""

    accepts = ("cloak",)
    version = "1"

    def run(self, release) -> AttackResult:
        cfg = self.ctx.cfg
        return protection(release.data, release.masks, release.surrogate, cfg.targets or targets(), cfg.bootstrap,
                          self.ctx.seed, cache=self.ctx.cache)

    @classmethod
    def preflight(cls, cfg) -> None:
        from decobench.models.fr.zoo import check_available

        check_available(list(cfg.targets or targets()))

    @classmethod
    def calibrate(cls, seed: int = 0) -> list[CalibrationCase]:
        from decobench.cloaks.craft import CraftSettings, craft_masks
        from decobench.cloaks.data import synthfaces
        from decobench.models.fr.train import to_unit
        from decobench.models.fr.zoo import load_zoo_model

        data = synthfaces(40, 2000)
        rec = {"resnet-arcface": load_zoo_model("resnet-arcface")}
        I, shape = len(data.identities), data.test.shape[2:4]
        craft = to_unit(data.craft.reshape(-1, *data.craft.shape[2:])).reshape(I, 10, 3, *shape)

        def top1(masks):
            r = protection(data, masks, "resnet-arcface", ["resnet-arcface"], 300, seed, rec)
            return r.metrics["privacy_fr_top1_whitebox"], r.reference["real_source"]["privacy_fr_top1_whitebox"]

        cloak, base = top1(craft_masks(craft, rec["resnet-arcface"].net, CraftSettings("fi_uap"), seed))
        zero, _ = top1(torch.zeros(I, 3, *shape))
        g = torch.Generator().manual_seed(seed)
        noise, _ = top1((torch.rand(I, 3, *shape, generator=g) * 2 - 1) * 8 / 255)
        return [
            CalibrationCase("fr_protection", "planted", "white-box top-1 protection", 1 - cloak["value"],
                            [1 - cloak["ci"][1], 1 - cloak["ci"][0]], ">= 0.8", 1 - cloak["value"] >= 0.8),
            CalibrationCase("fr_protection", "absent", "eps = 0 hit rate - unprotected", zero["value"] - base["value"],
                            [0.0, 0.0], "exactly 0", zero["value"] == base["value"]),
            CalibrationCase("fr_protection", "absent", "noise +-8 hit rate - unprotected", noise["value"] - base["value"],
                            [noise["ci"][0] - base["value"], noise["ci"][1] - base["value"]], "within 0.10",
                            abs(noise["value"] - base["value"]) <= 0.10),
        ]
