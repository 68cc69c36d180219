"""Pretrain the embedded ``tiny-synthface`` model on the disjoint ``synthfaces-pretrain`` population.

The stand-in for SD's LAION pretraining: identities of that population appear in no split. Stage 1
trains the VAE (L1 + MSE + small KL); stage 2 trains the UNet and the text encoder together on
cached latents with SD's DDPM schedule, dropping 10% of prompts so classifier-free guidance works.
``decobench base train tiny-synthface`` runs this and writes a manifest of how it was made.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from decobench.data.synthfaces import DOMAINS, build_population, render_faces
from decobench.io import atomic_write_json, sha256_file
from decobench.models.prompts import prompts_for
from decobench.models.tiny import IMAGE_SIZE, SCHEDULER_CONFIG, UNET_CONFIG, VAE_CONFIG, build_components, write_tokenizer


@dataclass(frozen=True)
class PretrainConfig:
    n_images: int = 30000
    vae_steps: int = 1000
    unet_steps: int = 2500
    batch_size: int = 64
    vae_lr: float = 1e-3
    unet_lr: float = 4e-4
    kl_weight: float = 1e-6
    prompt_dropout: float = 0.1
    seed: int = 0


def _to_unit(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def pretrain_tiny(out_dir: str | Path, cfg: PretrainConfig = PretrainConfig(), command: str = "") -> dict:
    from diffusers import DDPMScheduler

    out_dir = Path(out_dir)
    t_start = time.time()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    pop = build_population(DOMAINS["synthfaces-pretrain"])
    n = min(cfg.n_images, len(pop))
    idx = np.random.default_rng(cfg.seed).permutation(len(pop))[:n]
    images = _to_unit(render_faces(pop, idx, IMAGE_SIZE, supersample=2)[0])
    prompts = prompts_for(pop.labels.iloc[idx])

    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_tokenizer(tmp / "tokenizer")
    text_encoder, vae, unet = build_components(tmp / "tokenizer")
    losses = {}

    # stage 1: VAE
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    sched = _warmup_cosine(opt, cfg.vae_steps)
    vae.train()
    run = []
    for step in tqdm(range(cfg.vae_steps), desc="pretrain VAE", unit="step"):
        b = images[torch.randint(0, n, (cfg.batch_size,), generator=g)]
        post = vae.encode(b).latent_dist
        rec = vae.decode(post.sample(generator=g)).sample
        loss = F.l1_loss(rec, b) + F.mse_loss(rec, b) + cfg.kl_weight * post.kl().mean()
        _check(loss, "VAE", step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run.append(loss.item())
    losses["vae_final_loss"] = float(np.mean(run[-50:]))
    vae.eval()
    vae.requires_grad_(False)
    with torch.no_grad():
        stats = [vae.encode(images[i:i + 256]).latent_dist for i in range(0, n, 256)]
        mean = torch.cat([s.mean for s in stats])
        std = torch.cat([s.std for s in stats])
        rec = vae.decode(mean[:512]).sample
        losses["vae_recon_mae_0_255"] = float((rec - images[:512]).abs().mean() * 127.5)
    scaling = float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scaling)

    # stage 2: UNet + text encoder
    from transformers import CLIPTokenizer
    tokenizer = CLIPTokenizer.from_pretrained(tmp / "tokenizer")
    noise_sched = DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
    sched = _warmup_cosine(opt, cfg.unet_steps)
    uniq = sorted(set(prompts)) + [""]
    ids_all = tokenizer(uniq, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
    prompt_ix = torch.tensor([uniq.index(p) for p in prompts])
    empty_ix = len(uniq) - 1
    unet.train()
    text_encoder.train()
    run = []
    for step in tqdm(range(cfg.unet_steps), desc="pretrain UNet+text", unit="step"):
        bi = torch.randint(0, n, (cfg.batch_size,), generator=g)
        lat = (mean[bi] + std[bi] * torch.randn(mean[bi].shape, generator=g)) * scaling
        pix = prompt_ix[bi].clone()
        pix[torch.rand(len(bi), generator=g) < cfg.prompt_dropout] = empty_ix
        enc = text_encoder(ids_all[pix])[0]
        noise = torch.randn(lat.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(bi),), generator=g)
        pred = unet(noise_sched.add_noise(lat, noise, t), t, enc).sample
        loss = F.mse_loss(pred, noise)
        _check(loss, "UNet", step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        run.append(loss.item())
    losses["unet_final_loss"] = float(np.mean(run[-100:]))

    text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
    vae.save_pretrained(tmp / "vae", safe_serialization=True)
    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    (tmp / "scheduler").mkdir(exist_ok=True)
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDPMScheduler", **SCHEDULER_CONFIG}, indent=2))
    (tmp / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "safety_checker": [None, None], "feature_extractor": [None, None]}, indent=2))
    weights = sorted(p for p in tmp.rglob("*") if p.is_file())
    manifest = {
        "model": "tiny-synthface",
        "command": command or "decobench base train tiny-synthface",
        "config": asdict(cfg),
        "data": {"population": "synthfaces-pretrain", "population_seed": DOMAINS["synthfaces-pretrain"].seed,
                 "images": n, "image_size": IMAGE_SIZE, "render_supersample": 2, "identities_in_splits": 0},
        "architecture": {"vae": VAE_CONFIG, "unet": UNET_CONFIG, "scheduler": SCHEDULER_CONFIG},
        "parameters": {"text_encoder": sum(p.numel() for p in text_encoder.parameters()),
                       "vae": sum(p.numel() for p in vae.parameters()),
                       "unet": sum(p.numel() for p in unet.parameters())},
        "vae_scaling_factor": scaling,
        "final_losses": losses,
        "wall_s": round(time.time() - t_start, 1),
        "torch": torch.__version__,
        "sha256": {p.relative_to(tmp).as_posix(): sha256_file(p) for p in weights},
    }
    atomic_write_json(tmp / "manifest.json", manifest)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)  # the folder appears whole or not at all
    return manifest


def _warmup_cosine(opt, total: int, warmup_frac: float = 0.05):
    warm = max(1, int(total * warmup_frac))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / max(1, total)))))


def _check(loss: torch.Tensor, what: str, step: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"tiny-synthface pretraining: {what} loss became {loss.item()} at step {step}; "
                                 f"nothing was written. Lower the learning rate and rerun.")
