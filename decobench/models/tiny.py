"""Configs of the embedded ``tiny-synthface`` model: real diffusers/transformers classes, tiny sizes.

32x32 RGB images -> VAE (x2 down) -> 16x16x4 latents, the latent grid SD v1-5 has at DECO-Bench's
128x128. The UNet has three levels (16, 8, 4) with cross-attention transformer blocks in its down, mid
and up blocks at 8x8 and 4x4 (self-attention over 256 tokens dominated CPU time at 16x16); like SD
v1-5 each block ends in a conv ``proj_out`` (no linear projection). A 2-layer CLIP text encoder reads
a character vocabulary (empty BPE merges split words into characters).
"""

from __future__ import annotations

import json
from pathlib import Path

CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-+'"
MAX_TOKENS = 48

IMAGE_SIZE = 32
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, sample_size=IMAGE_SIZE,
                  down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                  block_out_channels=[32, 32], layers_per_block=1, norm_num_groups=8)
UNET_CONFIG = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                   block_out_channels=[32, 64, 64], norm_num_groups=8, cross_attention_dim=64,
                   attention_head_dim=16, use_linear_projection=False,
                   down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                   up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])
TEXT_CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   max_position_embeddings=MAX_TOKENS, projection_dim=64)
# Stable Diffusion v1-5's training noise schedule
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                        beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                        steps_offset=1, prediction_type="epsilon")


def vocab() -> dict[str, int]:
    v = {c: i for i, c in enumerate(CHARS)}
    v.update({c + "</w>": len(CHARS) + i for i, c in enumerate(CHARS)})
    v["<|startoftext|>"] = len(v)
    v["<|endoftext|>"] = len(v)
    return v


def write_tokenizer(folder: Path, max_tokens: int = MAX_TOKENS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab()))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": max_tokens, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True}))


def build_components(tokenizer_dir: Path, text_config: dict = TEXT_CONFIG, vae_config: dict = VAE_CONFIG,
                     unet_config: dict = UNET_CONFIG):
    """Fresh (random) text encoder, VAE and UNet, in that order; the tiny configuration by default (the
    GPU benchmark passes SD v1-5's)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    v = vocab()
    text_cfg = CLIPTextConfig(vocab_size=len(v), bos_token_id=v["<|startoftext|>"],
                              eos_token_id=v["<|endoftext|>"], pad_token_id=v["<|endoftext|>"], **text_config)
    return CLIPTextModel(text_cfg), AutoencoderKL(**vae_config), UNet2DConditionModel(**unet_config)
