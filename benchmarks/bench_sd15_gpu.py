"""The ``sd15`` path end to end on an SD-v1-5-shaped model with random weights at 128x128 (GPU).

Builds VAE / UNet / CLIP text encoder from Stable Diffusion v1-5's published configs (random weights,
nothing downloaded; the tokenizer is decobench's character tokenizer with 77 positions, which does not
change the compute), writes them as a diffusers folder, then runs ``decobench run --base sd15`` on it
and records LoRA step throughput, released images per second and peak GPU memory next to DECO-Bench's
figures (LoRA training 2 h / 23 GB; generation 4 h for 6K images at batch 1, 13 GB, one H100).

    python benchmarks/bench_sd15_gpu.py --steps 200 --images 512
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from decobench.io import atomic_write_json
from decobench.models.tiny import SCHEDULER_CONFIG, vocab, write_tokenizer

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,  # SD v1-5's real config
                 block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768, attention_head_dim=8,
                 norm_num_groups=32, down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, flip_sin_to_cos=True, freq_shift=0)
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, sample_size=512, layers_per_block=2,
                block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, scaling_factor=0.18215)
SD15_TEXT = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)


def build_sd15_shaped(folder: Path) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    write_tokenizer(folder / "tokenizer")
    cfg = json.loads((folder / "tokenizer" / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 77
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(cfg))
    v = vocab()
    CLIPTextModel(CLIPTextConfig(vocab_size=49408, bos_token_id=v["<|startoftext|>"],
                                 eos_token_id=v["<|endoftext|>"], pad_token_id=v["<|endoftext|>"], **SD15_TEXT)
                  ).save_pretrained(folder / "text_encoder")
    AutoencoderKL(**SD15_VAE).save_pretrained(folder / "vae")
    UNet2DConditionModel(**SD15_UNET).save_pretrained(folder / "unet")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "PNDMScheduler",
                                                                            **SCHEDULER_CONFIG}))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--method", default="ce_mask")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    from decobench.run.runner import run_benchmark

    work = Path(tempfile.mkdtemp(prefix="sd15-shaped-"))
    build_sd15_shaped(work / "sd15")
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    overrides = {"max_steps": args.steps, "batch_size": args.batch, "eval_every": args.steps, "warmup_steps": 20,
                 "max_train_images": max(args.batch * 4, args.images), "max_val_images": 256,
                 "release.max_images_per_split": args.images, "release.batch_size": 64,
                 "eval.max_test_images": args.images, "eval.max_gen_val_images": 256,
                 "eval.classifier.max_epochs": 5}
    result, _ = run_benchmark(args.method, "A", profile="paper", base_name="sd15", base_path=work / "sd15",
                              out=work / "runs", device=args.device, overrides=overrides)
    s = result["stage_seconds"]
    rec = {"command": f"python benchmarks/bench_sd15_gpu.py --steps {args.steps} --images {args.images} "
                      f"--batch {args.batch} --method {args.method}",
           "hardware": result["hardware"], "parameter_counts": result["parameter_counts"],
           "lora_steps": result["training"]["steps"], "lora_batch": args.batch,
           "lora_steps_per_s": round(result["training"]["steps"] / s["train"], 3),
           "resolution": result["resolution"],  # decobench's sd15 default, 128 (DECO-Bench A.3), not the config's 512
           "released_images_per_s": round(result["evaluations"][0]["attack_info"]["cls"]["released_images"]
                                          / s["release"], 3),
           "peak_gpu_memory_gib": (round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
                                   if args.device.startswith("cuda") else None),
           "stage_seconds": s,
           "deco_bench_reference": {"lora_training": "2 h, 23 GB (15 epochs, batch 128, one H100)",
                                    "generation": "4 h for 6K images at batch 1, 13 GB (1-2 s/image)"}}
    atomic_write_json(Path(__file__).parent / "results" / f"sd15_shaped_{args.device}.json", rec)
    print(json.dumps(rec, indent=2))


if __name__ == "__main__":
    main()
