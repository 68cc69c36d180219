"""A sheet of real vs VAE-reconstructed vs img2img samples, to see that a base model makes faces."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from decobench.models.prompts import prompts_for


def base_preview(base, dataset, n: int = 8, strength: float = 0.75, guidance: float = 7.5, steps: int = 30,
                 seed: int = 0, tile: int = 96, split_ids=None) -> Image.Image:
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    rec = dataset.records
    ids = split_ids[:n] if split_ids is not None else rec["image_id"].iloc[:: max(1, len(rec) // n)][:n].tolist()
    rows = rec.iloc[dataset.index_of(ids)]
    real = dataset.load_images(ids, base.resolution)
    x = torch.from_numpy(real).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    with torch.no_grad():
        recon = base.vae.decode(base.vae.encode(x).latent_dist.mean).sample
    recon = ((recon.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    sc = {k: v for k, v in base.scheduler_config.items() if not k.startswith("_")}
    pipe = StableDiffusionImg2ImgPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                          unet=base.unet, scheduler=DDIMScheduler.from_config(sc),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts = prompts_for(rows)
    out = pipe(prompt=prompts, image=(x + 1) / 2, strength=strength, guidance_scale=guidance, num_inference_steps=steps,
               generator=torch.Generator().manual_seed(seed), output_type="np").images
    gen = (np.asarray(out).clip(0, 1) * 255).round().astype(np.uint8)
    font = ImageFont.load_default()
    label_w, text_h = 90, 26
    sheet = Image.new("RGB", (label_w + n * tile, 3 * tile + text_h), "white")
    d = ImageDraw.Draw(sheet)
    for r, (name, imgs) in enumerate((("real", real), ("VAE recon", recon), ("img2img 0.75", gen))):
        d.text((4, r * tile + tile // 2 - 6), name, fill="black", font=font)
        for k, im in enumerate(imgs):
            sheet.paste(Image.fromarray(im).resize((tile, tile), Image.NEAREST), (label_w + k * tile, r * tile))
    for k, p in enumerate(prompts):
        words = p.replace("A ", "").split(" ")
        d.text((label_w + k * tile + 2, 3 * tile + 1), " ".join(words[:2])[:16], fill="black", font=font)
        d.text((label_w + k * tile + 2, 3 * tile + 13), " ".join(words[2:])[:16], fill="black", font=font)
    return sheet
