"""decobench's ``sd15`` path on an SD-v1-5-shaped model at 128x128, beside DECO-Bench's own setting.

Builds VAE / UNet / CLIP text encoder from Stable Diffusion v1-5's published configs (random weights,
nothing downloaded; the tokenizer is decobench's character tokenizer padded to 77 positions, which does
not change the compute) as a diffusers folder, loads it through ``load_base("sd15", ...)`` and measures,
in one process:

- LoRA training (CE+Mask, batch 128): decobench's ``Trainer`` on cached latents and text states, bf16
  autocast (*ours*), against the paper's setting (*reference*: fp32, the VAE and the text encoder run on
  every step, same method, same step) — images/s and peak memory. Variants: channels_last, gradient
  checkpointing, ``torch.compile``.
- Release (img2img, strength 0.75, guidance 7.5, 50 DDIM steps): decobench's ``build_pipeline`` +
  ``release`` at large batches (*ours*: bf16 weights, channels-last), against the stock diffusers img2img
  pipeline in fp32 at batch 1 (*reference*, DECO-Bench's setting) — images/s and peak memory.
  Variants: batch 256 (the paper profile's), ``--compile``, DPM-Solver with 25 steps.
- Model FLOPs per image (``torch.utils.flop_counter``) -> achieved TFLOP/s and share of the GPU's bf16
  peak (the spec sheet's dense figure and a measured 8192^3 bf16 matmul).

    python benchmarks/bench_sd15_gpu.py                      # GPU: writes results/sd15_gpu_<gpu>.json
    python benchmarks/bench_sd15_gpu.py --config tiny --device cpu --quick --out /tmp/x.json  # CPU smoke (tests)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

os.environ.setdefault("TQDM_DISABLE", "1")

from decobench.io import atomic_write_json  # noqa: E402
from decobench.models import tiny  # noqa: E402

from sd15_shaped import CONFIGS, PAPER, SPEC_BF16_TFLOPS, Gpu, build_shaped, count_flops  # noqa: E402

# ----------------------------------------------------------------------------------------------- data

@dataclass
class RawSet:
    """What the paper's loop reads each step: pixels and token ids (no cached latents or text states)."""

    images: torch.Tensor  # uint8 [N, 3, H, W]
    tokens: torch.Tensor  # long [N, T]
    labels: dict

    def __len__(self) -> int:
        return len(self.images)


def inputs(base, n_train: int, n_val: int, device: str, cache_dir: Path):
    """SynthFaces train/val ids through decobench's own cached-latent stage, plus the raw pixels/tokens."""
    from decobench.data.open import open_dataset
    from decobench.models.prompts import prompts_for
    from decobench.run import stages
    from decobench.run.cache import StageCache
    from decobench.splits import load_split

    ds = open_dataset("synthfaces-a")
    cache, out = StageCache(cache_dir), {}
    for split, n in (("train", n_train), ("val", n_val)):
        ids = load_split(ds.name, split, fingerprint=ds.fingerprint())[:n]
        rows = ds.records.iloc[ds.index_of(ids)]
        prompts = prompts_for(rows, "paper", "race")
        images = ds.load_images(ids, base.resolution)
        tokens = base.tokenizer(prompts, padding="max_length", max_length=base.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt").input_ids
        out[split] = {"latents": stages.latent_set(cache, base, ds, split, ids, "paper", "race", device),
                      "raw": RawSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), tokens,
                                    stages.labels_of(rows)),
                      "images": images, "prompts": prompts}
    return ds, out


# ------------------------------------------------------------------------------------------- training

def make_trainer(base, ds, batch: int, device: str, reference: bool):
    from decobench.methods.base import MethodSpec
    from decobench.models.lora import lora_target_names
    from decobench.registry import methods
    from decobench.run import stages
    from decobench.run.config import resolve
    from decobench.run.train import LatentSet, Trainer

    cls = methods.get("ce_mask")
    cfg, params = resolve("paper", cls, "ce_mask", {"batch_size": batch, "warmup_steps": 0})
    modules = dict(base.unet.named_modules())
    spec = MethodSpec([modules[t].out_channels for t in lora_target_names(base.unet)], stages.n_classes(ds.records),
                      "race", ("gender", "age"))

    class ReferenceTrainer(Trainer):
        """DECO-Bench's setting: fp32 throughout; the VAE encodes pixels and CLIP encodes tokens every step."""

        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.backbone._autocast = contextlib.nullcontext  # fp32 throughout

        def _inputs(self, raw, idx, g, *args, **kw):  # every batch (training and evaluation) starts here
            dev = self.device
            with torch.no_grad():
                post = self.backbone.base.vae.encode(raw.images[idx].to(dev).float().div(127.5).sub(1)).latent_dist
                text = self.backbone.base.text_encoder(raw.tokens[idx].to(dev))[0]
            lat = LatentSet(post.mean, post.std, text, {k: v[idx] for k, v in raw.labels.items()})
            return super()._inputs(lat, torch.arange(len(idx)), g, *args, **kw)

    return (ReferenceTrainer if reference else Trainer)(base, cls(spec, params), cfg.train, device=device)


def time_training(trainer, train, val, gpu: Gpu, warm: int, steps: int) -> dict:
    """Seconds per optimiser step: after a warm-up fit (autotuning, compilation), a fit of warm+steps
    steps minus a fit of warm steps (both end with one evaluation on V and one checkpoint), so start-up
    and evaluation cancel out."""
    cfg0, box = trainer.cfg, []

    def fit(n):
        trainer.cfg = cfg0.model_copy(update={"max_steps": n, "eval_every": n, "select_after": 0.0})
        with gpu.clock(box):
            trainer.fit(train, val)
    fit(warm)
    gpu.reset_peak()
    fit(warm)
    fit(warm + steps)
    per_step = (box[2] - box[1]) / steps
    batch = trainer.cfg.batch_size
    return {"batch": batch, "timed_steps": steps, "s_per_step": round(per_step, 4),
            "images_per_s": round(batch / per_step, 1), "peak_gib": gpu.peak_gib()}


def train_flops(trainer, train, val) -> float:
    """Model FLOPs of one optimiser step (fit of one step minus its evaluation on V)."""
    trainer.cfg = trainer.cfg.model_copy(update={"max_steps": 1, "eval_every": 1, "select_after": 0.0})
    return count_flops(lambda: trainer.fit(train, val)) - count_flops(lambda: trainer.evaluate(val))


# -------------------------------------------------------------------------------------------- release

def release_cfg(steps: int, batch: int, scheduler: str = "ddim"):
    from decobench.run.config import ReleaseConfig

    return ReleaseConfig(num_inference_steps=steps, batch_size=batch, scheduler=scheduler)


def time_release(pipe, images, prompts, cfg, gpu: Gpu, reference: bool = False) -> dict:
    from decobench.run.release import release

    n = len(images)
    if reference:  # the stock pipeline as the paper ran it: fp32, one image per call
        def go(k):
            for i in range(k):
                init = torch.from_numpy(images[i:i + 1]).permute(0, 3, 1, 2).float().div(255).to(gpu.device)
                pipe(prompt=prompts[i:i + 1], image=init, strength=cfg.strength, guidance_scale=cfg.guidance_scale,
                     num_inference_steps=cfg.num_inference_steps, generator=torch.Generator().manual_seed(i),
                     output_type="np")
        go(1)  # warm-up
    else:
        def go(k):
            release(pipe, images[:k], prompts[:k], cfg, 0, gpu.device)
        go(min(cfg.batch_size, n))  # warm-up (and compilation)
    gpu.reset_peak()
    box = []
    with gpu.clock(box):
        go(n)
    return {"batch": 1 if reference else cfg.batch_size, "images": n, "scheduler": cfg.scheduler,
            "num_inference_steps": cfg.num_inference_steps, "images_per_s": round(n / box[0], 3),
            "peak_gib": gpu.peak_gib()}


# ----------------------------------------------------------------------------------------------- main

PARTIAL: list = []  # (record, path): what is measured so far is written after every measurement


def attempt(record: dict, key: str, fn):
    """One measurement; a failure is recorded (not fatal) so one broken variant keeps the others."""
    try:
        record[key] = fn()
    except Exception as exc:  # noqa: BLE001 - the benchmark reports what failed and goes on
        record[key] = {"error": f"{type(exc).__name__}: {exc}"[:600]}
        traceback.print_exc()
    print(key, json.dumps(record[key]), flush=True)
    for rec, path in PARTIAL:
        atomic_write_json(path.with_suffix(".partial.json"), rec)


TRAIN_VARIANTS = {"decobench": lambda unet: None,
                  "gradient_checkpointing": lambda unet: unet.enable_gradient_checkpointing(),
                  "channels_last": lambda unet: unet.to(memory_format=torch.channels_last),
                  "batch_x2": lambda unet: None, "compile": lambda unet: None}


class Bench:
    """The SD-v1-5-shaped folder, its cached inputs, and the LoRA trained by decobench's default variant."""

    def __init__(self, args, folder: Path, gpu: Gpu, rec: dict):
        self.args, self.folder, self.gpu, self.rec = args, folder, gpu, rec
        self.rec.setdefault("train", {})
        self.rec.setdefault("release", {})
        self.lora_dir, self.method, self.ds, self.data = folder.parent / "lora", None, None, None

    def base(self, device=None):
        from decobench.models.base import load_base

        return load_base("sd15", self.folder, device=device or self.gpu.device, resolution=self.args.resolution)

    def train(self, name: str) -> None:
        from decobench.models.lora import save_lora

        args, gpu = self.args, self.gpu
        base = self.base()
        if self.data is None:
            self.ds, self.data = inputs(base, max(4 * args.batch, args.release_images), args.val_images, gpu.device,
                                        self.folder.parent / "cache")
        TRAIN_VARIANTS[name](base.unet)
        trainer = make_trainer(base, self.ds, 2 * args.batch if name == "batch_x2" else args.batch, gpu.device,
                               reference=False)
        if name == "compile":
            base.unet.compile()
        train, val = self.data["train"]["latents"], self.data["val"]["latents"]
        attempt(self.rec["train"], name, lambda: time_training(trainer, train, val, gpu, args.warm, args.steps))
        if name == "decobench":
            attempt(self.rec, "train_flops_per_image", lambda: train_flops(trainer, train, val) / args.batch)
            save_lora(base.unet, self.lora_dir)
            self.method = trainer.method
        base = trainer = None  # noqa: F841 - free the model before the next variant
        gpu.free()

    def train_reference(self) -> None:
        args, raw = self.args, (self.data["train"]["raw"], self.data["val"]["raw"])
        base = self.base()
        trainer = make_trainer(base, self.ds, args.batch, self.gpu.device, reference=True)
        attempt(self.rec["train"], "reference", lambda: time_training(trainer, *raw, self.gpu, 1, args.reference_steps))
        attempt(self.rec, "reference_train_flops_per_image", lambda: train_flops(trainer, *raw) / args.batch)
        base = trainer = None  # noqa: F841 - free the model before the next variant
        self.gpu.free()

    def release(self, name: str, steps: int, batch: int, scheduler="ddim", compile_unet=False, flops=False) -> None:
        from decobench.run.release import build_pipeline, release

        n = self.args.release_images
        images, prompts = self.data["train"]["images"][:n], self.data["train"]["prompts"][:n]
        cfg = release_cfg(steps, batch, scheduler)

        def go():
            pipe, _ = build_pipeline(self.base(), self.lora_dir, cfg, self.method, self.gpu.device, compile_unet)
            out = time_release(pipe, images, prompts, cfg, self.gpu)
            if flops:  # counted per variant: the VAE's share and the steps run differ by scheduler
                k = min(batch, n)
                out["flops_per_image"] = count_flops(
                    lambda: release(pipe, images[:k], prompts[:k], cfg, 0, self.gpu.device)) / k
            return out
        attempt(self.rec["release"], name, go)
        self.gpu.free()

    def release_reference(self) -> None:
        from decobench.run.release import build_pipeline

        k, cfg = self.args.reference_images, release_cfg(50, 1)
        images, prompts = self.data["train"]["images"][:k], self.data["train"]["prompts"][:k]

        def go():  # the same fused pipeline built on the CPU, then moved as it is: fp32 weights, NCHW
            pipe, _ = build_pipeline(self.base("cpu"), self.lora_dir, cfg, self.method, "cpu")
            return time_release(pipe.to(self.gpu.device), images, prompts, cfg, self.gpu, reference=True)
        attempt(self.rec["release"], "reference", go)
        self.gpu.free()

    def all(self) -> None:
        """Cheap and essential first (decobench's default, the references), compilation last."""
        v, big = self.args.variants, self.args.release_batch
        self.train("decobench")
        if self.args.only_compile:  # the compiled variants alone (their compilation takes minutes)
            self.train("compile")
            self.release("batch_256_compile", 50, 2 * big, compile_unet=True)
            return
        for name in ("gradient_checkpointing", "channels_last", "batch_x2"):
            if name in v:
                self.train(name)
        self.train_reference()
        self.release("decobench", 50, big, flops=True)
        self.rec["release_flops_per_image"] = self.rec["release"]["decobench"].get("flops_per_image")
        if "batch_x2" in v:
            self.release("batch_256", 50, 2 * big)
        if "dpm" in v:
            self.release("batch_256_dpm25", 25, 2 * big, "dpm", flops=True)
        self.release_reference()
        if "compile" in v:
            self.train("compile")
            self.release("batch_256_compile", 50, 2 * big, compile_unet=True)


def summarise(rec: dict, peak_spec: float | None) -> None:
    """Ratios ours / reference and achieved TFLOP/s and share of the bf16 peak for every figure."""
    peaks = {"spec": peak_spec, "measured_matmul": rec.get("matmul_bf16_tflops")}
    for stage, flops_key in (("train", "train_flops_per_image"), ("release", "release_flops_per_image")):
        ref = rec[stage].get("reference", {}).get("images_per_s")
        for name, r in rec[stage].items():
            if "images_per_s" not in r:
                continue
            per_image = r.get("flops_per_image") or rec.get(
                f"reference_{flops_key}" if name == "reference" and stage == "train" else flops_key)
            if ref and name != "reference":
                r["x_reference"] = round(r["images_per_s"] / ref, 1)
            r["x_paper"] = round(r["images_per_s"] / PAPER[f"{stage}_images_per_s"], 1)
            if isinstance(per_image, float):
                scaled = "num_inference_steps" in r and "flops_per_image" not in r  # records made before
                f = per_image * (r["num_inference_steps"] / 50 if scaled else 1)
                r["achieved_tflops"] = round(f * r["images_per_s"] / 1e12, 2)
                for k, p in peaks.items():
                    if p:
                        r[f"share_of_bf16_peak_{k}"] = round(f * r["images_per_s"] / 1e12 / p, 3)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="sd15")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--resolution", type=int, default=None, help="default 128 (sd15), 32 (tiny)")
    ap.add_argument("--batch", type=int, default=128, help="LoRA training batch (DECO-Bench: 128)")
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per variant")
    ap.add_argument("--reference-steps", type=int, default=5)
    ap.add_argument("--val-images", type=int, default=256)
    ap.add_argument("--release-images", type=int, default=512)
    ap.add_argument("--release-batch", type=int, default=128)
    ap.add_argument("--reference-images", type=int, default=8)
    ap.add_argument("--variants", default="gradient_checkpointing,channels_last,batch_x2,dpm,compile",
                    help="comma list of the variants to measure beside decobench's default and the reference")
    ap.add_argument("--quick", action="store_true", help="a few steps and images of each: the tests' smoke run")
    ap.add_argument("--only-compile", action="store_true", help="decobench's default and the compiled variants")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/sd15_gpu_<device>.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.warm, args.steps, args.reference_steps, args.val_images = 4, 1, 2, 1, 8
        args.release_images, args.release_batch, args.reference_images = 4, 2, 1
        args.variants = "gradient_checkpointing,batch_x2"
    args.variants = [v for v in args.variants.split(",") if v]
    args.resolution = args.resolution or (128 if args.config == "sd15" else tiny.IMAGE_SIZE)
    gpu = Gpu(args.device)
    torch.backends.cudnn.benchmark = gpu.cuda
    import diffusers
    import peft

    rec = {"command": "python benchmarks/bench_sd15_gpu.py " + " ".join(argv if argv is not None else os.sys.argv[1:]),
           "device": gpu.name(), "config": args.config, "resolution": args.resolution,
           "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "peft": peft.__version__},
           "paper": PAPER, "matmul_bf16_tflops": gpu.matmul_tflops()}
    peak_spec = next((v for k, v in SPEC_BF16_TFLOPS.items() if k in rec["device"]), None)
    rec["spec_bf16_tflops"] = peak_spec
    slug = "".join(c if c.isalnum() else "_" for c in rec["device"]).strip("_").lower()
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"sd15_gpu_{slug}.json"
    PARTIAL.append((rec, out))
    work = Path(tempfile.mkdtemp(prefix="sd15-shaped-"))
    t = time.perf_counter()
    build_shaped(work / "base", args.config)
    rec["build_s"] = round(time.perf_counter() - t, 1)
    Bench(args, work / "base", gpu, rec).all()
    summarise(rec, peak_spec)
    atomic_write_json(out, rec)
    out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(json.dumps(rec, indent=2))
    return rec


if __name__ == "__main__":
    main()
