"""DP-SGD step time vs the same step without DP (issue goal: <= 2x on CPU, stretch <= 1.5x).

Same base (the shipped tiny-synthface at its 32 px, 8x8 latents), same batch, same CE game: ``ce`` (AdamW on
the batch gradient) beside ``ce_dp`` (per-example gradients of the LoRA and the adversary by torch.func,
Opacus's DPOptimizer clipping + noise + accountant step). The DP batch is Poisson-sampled with expected
size B, so its realised sizes vary around B; the figure per step is the median over ``--steps`` steps
after ``--warmup``.

``--track model``: the same pair on the model track's released encoder (the embedded FaceEncoder, widths
32-64-128-256 at 32 px, with its utility heads): ``ce_dp`` makes the whole encoder private (DPLH's setting).

    python benchmarks/bench_dp_step.py                 # LoRA, batch 64, the embedded profile's
    python benchmarks/bench_dp_step.py --track model   # encoder -> results/dp_step_encoder_cpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from decobench.io import atomic_write_json
from decobench.methods.base import MethodSpec
from decobench.models.base import load_base
from decobench.models.lora import lora_target_names
from decobench.registry import methods
from decobench.run.config import TrainConfig
from decobench.run.train import LatentSet, Trainer, phase_at


def step_times(method: str, batch: int, steps: int, warmup: int, attention: str) -> list[float]:
    base = load_base("tiny-synthface")
    if attention == "math":
        from diffusers.models.attention_processor import AttnProcessor

        base.unet.set_attn_processor(AttnProcessor())
    mods = dict(base.unet.named_modules())
    spec = MethodSpec([mods[t].out_channels for t in lora_target_names(base.unet)], {"race": 5, "gender": 2, "age": 9})
    cls = methods.get(method)
    cfg = TrainConfig(lr=1e-3, max_steps=steps + warmup, batch_size=batch, warmup_steps=0)
    tr = Trainer(base, cls(spec), cfg, seed=0, log=lambda *a: None)
    if attention == "sdpa":  # the Trainer switches a private LoRA's UNet to math attention on CPU: undo it here
        from diffusers.models.attention_processor import AttnProcessor2_0

        base.unet.set_attn_processor(AttnProcessor2_0())
    n = 6000  # the embedded profile's training images
    g = torch.Generator().manual_seed(0)
    h = base.unet.config.sample_size
    text = base.text_encoder(base.tokenizer([""], padding="max_length", max_length=base.tokenizer.model_max_length,
                                            return_tensors="pt").input_ids)[0].detach()
    data = LatentSet(torch.randn(n, 4, h, h, generator=g), torch.full((n, 4, h, h), 0.05), text.expand(n, -1, -1),
                     {"race": torch.randint(0, 5, (n,), generator=g), "gender": torch.randint(0, 2, (n,), generator=g),
                      "age": torch.randint(0, 9, (n,), generator=g)})
    return _timed_steps(tr, data, n, batch, steps, warmup, g)


def encoder_step_times(method: str, batch: int, steps: int, warmup: int) -> list[float]:
    from decobench.run.encoder_backbone import EncoderBackbone, ImageSet

    spec = MethodSpec([256], {"race": 5, "gender": 2, "age": 9}, extra={"source_shape": (3, 32, 32)})
    cls = methods.get(method)
    method_obj = cls(spec)
    cfg = TrainConfig(lr=1e-3, max_steps=steps + warmup, batch_size=batch, warmup_steps=0)
    tr = Trainer(EncoderBackbone(spec, method_obj, widths=(32, 64, 128, 256)), method_obj, cfg, seed=0,
                 log=lambda *a: None)
    n = 6000
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (n, 32, 32, 3), generator=g, dtype=torch.uint8),
                    {"race": torch.randint(0, 5, (n,), generator=g), "gender": torch.randint(0, 2, (n,), generator=g),
                     "age": torch.randint(0, 9, (n,), generator=g)})
    return _timed_steps(tr, data, n, batch, steps, warmup, g)


def _timed_steps(tr, data, n, batch, steps, warmup, g) -> list[float]:
    from decobench.run.dp import poisson_batch

    opts, private, probe_opt = tr._optimisers()
    dp = tr._private_training(n, private, list(opts)) if private else None
    times = []
    for step in range(1, steps + warmup + 1):
        phase = phase_at(tr.method.phases, step, tr.cfg.max_steps)
        idx = poisson_batch(n, dp.sample_rate, g) if dp else torch.randint(0, n, (batch,), generator=g)
        t = time.perf_counter()
        tr._train_step(data, idx, g, step, phase, 0, opts, probe_opt, dp, tuple(private))
        if step > warmup:
            times.append(time.perf_counter() - t)
    return times


def _row(ts: list[float]) -> dict:
    return {"median_s": round(statistics.median(ts), 4), "min_s": round(min(ts), 4), "max_s": round(max(ts), 4)}


def main_encoder(args) -> None:
    rows = {m: _row(encoder_step_times(m, args.batch, args.steps, args.warmup)) for m in ("ce", "ce_dp")}
    print(rows, flush=True)
    record = {"command": f"python benchmarks/bench_dp_step.py --track model --batch {args.batch} --steps {args.steps}",
              "model": "FaceEncoder widths 32-64-128-256 at 32 px + utility heads (the embedded model track's)",
              "batch": args.batch, "threads": torch.get_num_threads(), "machine": platform.machine(),
              "torch": torch.__version__, "steps": rows,
              "dp_over_non_dp": round(rows["ce_dp"]["median_s"] / rows["ce"]["median_s"], 2),
              "note": "ce_dp on the model track: every encoder and head parameter and the adversary private "
                      "(per-example gradients by torch.func vmap, Opacus clipping + noise + accountant step)"}
    out = Path(args.out or "benchmarks/results/dp_step_encoder_cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, record)
    print(record["dp_over_non_dp"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--track", choices=("data", "model"), default="data")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.track == "model":
        return main_encoder(args)
    rows = {}
    for attention in ("sdpa", "math"):
        for method in ("ce", "ce_dp"):
            rows[f"{method}/{attention}"] = _row(step_times(method, args.batch, args.steps, args.warmup, attention))
            print(method, attention, rows[f"{method}/{attention}"], flush=True)
    ratio = {a: round(rows[f"ce_dp/{a}"]["median_s"] / rows[f"ce/{a}"]["median_s"], 2) for a in ("sdpa", "math")}
    record = {"command": f"python benchmarks/bench_dp_step.py --batch {args.batch} --steps {args.steps}",
              "base": "tiny-synthface (32 px, 8x8 latents)", "batch": args.batch,
              "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__,
              "steps": rows, "dp_over_non_dp": ratio,
              "note": "sdpa: diffusers' default attention (torch SDPA, no vmap batching rule on CPU: a per-example "
                      "fallback loop); math: diffusers' AttnProcessor (batched matmuls, vmap-native), what "
                      "decobench uses for a private LoRA on CPU"}
    out = Path(args.out or "benchmarks/results/dp_step_cpu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, record)
    print(record["dp_over_non_dp"])


if __name__ == "__main__":
    main()
