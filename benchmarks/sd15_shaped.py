"""An SD-v1-5-shaped base model with random weights (nothing downloaded), and the measuring helpers of
``bench_sd15_gpu.py``: a synchronised clock, peak GPU memory, model FLOPs, the GPU's bf16 peak."""

from __future__ import annotations

import contextlib
import gc
import json
import time
from pathlib import Path

import torch

from decobench.models import tiny

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,  # SD v1-5's real config
                 block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768, attention_head_dim=8,
                 norm_num_groups=32, down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, flip_sin_to_cos=True, freq_shift=0)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, sample_size=512, layers_per_block=2,
                block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, scaling_factor=0.18215)
SD15_TEXT = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
CONFIGS = {"sd15": (SD15_UNET, SD15_VAE, SD15_TEXT, 77),
           "tiny": (tiny.UNET_CONFIG, tiny.VAE_CONFIG, tiny.TEXT_CONFIG, tiny.MAX_TOKENS)}
# dense bf16 tensor-core peak from the vendor's data sheet (SXM parts), TFLOP/s
SPEC_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}
# DECO-Bench A.4 on one H100: LoRA 15 epochs at batch 128 in 2 h; G (6K images) released at batch 1 in 4 h.
# Its Tr is ~13K images (G = 6K = 0.25 of the data it used, Tr = 0.9 x 0.6 of it): ~27 training images/s.
PAPER = {"train_images_per_s": round(15 * 0.9 * 0.6 * 6000 / 0.25 / 7200, 1), "train_memory_gb": 23,
         "release_images_per_s": round(6000 / (4 * 3600), 2), "release_memory_gb": 13}


def build_shaped(folder: Path, config: str) -> None:
    """A diffusers-format base-model folder of ``config``'s shapes with random (seeded) weights."""
    unet_cfg, vae_cfg, text_cfg, tokens = CONFIGS[config]
    torch.manual_seed(0)
    tiny.write_tokenizer(folder / "tokenizer", tokens)
    text_cfg = {**text_cfg, "max_position_embeddings": tokens}
    text_encoder, vae, unet = tiny.build_components(folder / "tokenizer", text_cfg, vae_cfg, unet_cfg)
    text_encoder.save_pretrained(folder / "text_encoder")
    vae.save_pretrained(folder / "vae")
    unet.save_pretrained(folder / "unet")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler",
                                                                            **tiny.SCHEDULER_CONFIG}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))


class Gpu:
    """Wall clock with device synchronisation, peak memory, and the device's name."""

    def __init__(self, device: str):
        self.device, self.cuda = device, device.startswith("cuda")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self):
        return round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if self.cuda else None

    def free(self):
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    @contextlib.contextmanager
    def clock(self, box: list):
        self.sync()
        t = time.perf_counter()
        yield
        self.sync()
        box.append(time.perf_counter() - t)

    def name(self) -> str:
        return torch.cuda.get_device_name() if self.cuda else "cpu"

    def matmul_tflops(self) -> float | None:
        if not self.cuda:
            return None
        a = torch.randn(8192, 8192, device=self.device, dtype=torch.bfloat16)
        for _ in range(3):
            a @ a
        box = []
        with self.clock(box):
            for _ in range(10):
                a @ a
        return round(10 * 2 * 8192 ** 3 / box[0] / 1e12, 1)


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())
