"""Tiny random models built from configs (no weights needed), shaped like the embedded base."""

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from decobench.models.base import BaseModel
from decobench.models.tiny import SCHEDULER_CONFIG, vocab, write_tokenizer


def tiny_base(seed=0, tmp=None):
    import tempfile
    from pathlib import Path

    torch.manual_seed(seed)
    folder = Path(tmp or tempfile.mkdtemp()) / "tokenizer"
    write_tokenizer(folder)
    tok = CLIPTokenizer.from_pretrained(folder, model_max_length=16)
    v = vocab()
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(v), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=16,
                                      bos_token_id=v["<|startoftext|>"], eos_token_id=v["<|endoftext|>"],
                                      pad_token_id=v["<|endoftext|>"]))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=16,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        block_out_channels=[8, 8], layers_per_block=1, norm_num_groups=4)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=[16, 16], norm_num_groups=4, cross_attention_dim=16,
                                attention_head_dim=8, down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
    return BaseModel("tiny-test", folder.parent, vae, te, tok, unet, dict(SCHEDULER_CONFIG), 16)
