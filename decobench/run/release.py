"""Release: img2img of a real split through the fine-tuned model -> D_deco (image folder + labels.csv).

StableDiffusionImg2ImgPipeline from the base model's parts, the LoRA loaded from the run folder with
diffusers' ``load_lora_weights`` and fused at scale 1 (DECO-Bench A.3), strength 0.75, guidance 7.5,
batched. A method that transforms the first adapted layer (CE+Mask's FGN) is attached by a hook. On
CUDA the fused pipeline holds bf16 weights in channels-last layout and runs under bf16 autocast;
``compile_unet`` compiles its UNet (benchmarks/bench_sd15_gpu.py measures each).
"""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from decobench.io import atomic_write_bytes, atomic_write_text
from decobench.models.lora import lora_target_names
from decobench.run.distributed import SINGLE, Processes


@contextlib.contextmanager
def _diffusers_errors_only():
    from diffusers.utils import logging as dlogging

    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()
    try:
        yield
    finally:
        dlogging.set_verbosity(level)


def build_pipeline(base, lora_dir: Path, cfg, method=None, device="cpu", compile_unet: bool = False):
    """``compile_unet``: ``torch.compile`` the fused UNet (hook included): the same function, faster after a
    compilation of about a minute."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, StableDiffusionImg2ImgPipeline

    schedulers = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}
    sc = {k: v for k, v in base.scheduler_config.items() if not k.startswith("_")}
    pipe = StableDiffusionImg2ImgPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
        scheduler=schedulers[cfg.scheduler].from_config(sc), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    with _diffusers_errors_only():  # "no LoRA keys for the text encoder" is expected: only the UNet is adapted
        pipe.load_lora_weights(str(lora_dir), weight_name="pytorch_lora_weights.safetensors", adapter_name="deco")
    pipe.fuse_lora(lora_scale=cfg.lora_scale)
    pipe.unload_lora_weights()  # fused into the base weights; drop the adapter modules
    handle = None
    if method is not None and method.uses_transform():
        first = dict(pipe.unet.named_modules())[lora_target_names(pipe.unet)[0]]
        handle = first.register_forward_hook(lambda m, a, out: method.transform_first(out))
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device)
    if str(device).startswith("cuda"):  # bf16 weights, channels-last convolutions (computed in bf16 anyway)
        with _diffusers_errors_only():  # "modules that should be kept in float32: []" (there are none)
            pipe.to(dtype=torch.bfloat16)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_unet:
        pipe.unet.compile()
    return pipe, handle


def release(pipe, images: np.ndarray, prompts: list[str], cfg, seed: int, device="cpu", desc="release",
            procs: Processes = SINGLE):
    """uint8 [N,H,W,3] real images -> uint8 [N,H,W,3] released images (deterministic by seed: each batch's
    noise is seeded by its position, so several processes, each releasing every world-th batch, release the
    same images as one)."""
    out = np.empty_like(images)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(device).startswith("cuda"))
    starts = list(range(0, len(images), cfg.batch_size))
    mine = starts[procs.rank::procs.world]
    for i in tqdm(mine, desc=desc, unit="batch", leave=False, disable=not procs.is_main):
        chunk = images[i:i + cfg.batch_size]
        init = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div(255).to(device)  # [0, 1] as diffusers expects
        g = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + i)
        with autocast, torch.no_grad():
            res = pipe(prompt=prompts[i:i + cfg.batch_size], image=init, strength=cfg.strength,
                       guidance_scale=cfg.guidance_scale, num_inference_steps=cfg.num_inference_steps,
                       generator=g, output_type="np")
        arr = np.asarray(res.images)
        if not np.isfinite(arr).all():
            raise FloatingPointError(f"{desc}: the pipeline produced non-finite pixels at batch {i}")
        out[i:i + len(chunk)] = (arr.clip(0, 1) * 255).round().astype(np.uint8)
    if procs.world > 1:
        for i, chunk in procs.gather([(i, out[i:i + cfg.batch_size]) for i in mine]):
            out[i:i + len(chunk)] = chunk
    return out


def save_released(folder: Path, images: np.ndarray, rows, prompts: list[str]) -> None:
    """D_deco on disk: ``images/<n>.png`` and ``labels.csv`` (source id, labels, prompt)."""
    img_dir = folder / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        atomic_write_bytes(img_dir / f"{k:06d}.png", buf.getvalue())
    lines = io.StringIO()
    w = csv.writer(lines)
    w.writerow(["file", "source_image_id", "race", "gender", "age", "prompt"])
    for k, ((_, r), p) in enumerate(zip(rows.iterrows(), prompts)):
        w.writerow([f"images/{k:06d}.png", r["image_id"], int(r["race"]), int(r["gender"]), int(r["age"]), p])
    atomic_write_text(folder / "labels.csv", lines.getvalue())


def load_released(folder: Path):
    import pandas as pd

    labels = pd.read_csv(folder / "labels.csv")
    images = np.stack([np.asarray(Image.open(folder / f).convert("RGB")) for f in labels["file"]])
    return images, labels
