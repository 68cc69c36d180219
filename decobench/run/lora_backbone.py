"""The data track's trainable part: LoRA adapters on a latent-diffusion UNet (DECO-Bench §4.2, A.3).

A *backbone* is what the game trainer (:mod:`decobench.run.train`) needs from a track: the released
trainable parameters and the module that owns them, batch inputs drawn from a data set, a forward pass that
fills a :class:`~decobench.methods.base.StepContext`, and the base loss the released part always minimises
(here the diffusion MSE on cached latents: noisy latents -> UNet with the adapted layers hooked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from decobench.models.lora import LoraFeatures, add_lora, parameter_counts


@dataclass
class LatentSet:
    """Frozen inputs of one split: VAE posterior mean/std (unscaled), text states, every label."""

    mean: torch.Tensor
    std: torch.Tensor
    text: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.mean)

    def subset(self, idx) -> "LatentSet":
        return LatentSet(self.mean[idx], self.std[idx], self.text[idx], {k: v[idx] for k, v in self.labels.items()})

    @staticmethod
    def concat(sets: list["LatentSet"]) -> "LatentSet":
        keys = set.intersection(*(set(s.labels) for s in sets))
        return LatentSet(torch.cat([s.mean for s in sets]), torch.cat([s.std for s in sets]),
                         torch.cat([s.text for s in sets]), {k: torch.cat([s.labels[k] for s in sets]) for k in keys})


class LoraBackbone:
    """LoRA (rank ``cfg.lora_rank``, seeded Gaussian init) on every cross-attention ``proj_out``; the base loss
    is the diffusion MSE; the features are the adapted layers' outputs (the method's ``transform_first``, e.g.
    CE+Mask's filter network, applied to the first)."""

    name = "lora"
    base_loss_name = "mse"

    def __init__(self, base, cfg, method, device="cpu", seed: int = 0):
        from diffusers import DDPMScheduler

        self.base, self.device = base, device
        sc = {k: v for k, v in base.scheduler_config.items() if not k.startswith("_")}
        self.sched = DDPMScheduler.from_config(sc)
        self.scaling = base.vae.config.scaling_factor
        base.freeze_frozen_parts()
        torch.manual_seed(seed)  # the LoRA's initialisation depends on the seed alone, not on the method
        self.targets = add_lora(base.unet, rank=cfg.lora_rank)
        self.counts = parameter_counts(base.unet)
        self.hooks = LoraFeatures(base.unet, self.targets, method.transform_first if method.uses_transform() else None)
        self.dims = self.hooks.dims
        self.module = base.unet
        self.params = [p for p in base.unet.parameters() if p.requires_grad]
        if not str(device).startswith("cuda"):
            # on CPU every LoRA run (training, features, the MIA's UNet queries) uses diffusers' math attention:
            # torch's CPU SDPA has no vmap batching rule (DP's per-example passes fall back to a loop), and the
            # math path is faster on CPU anyway: 0.40 s vs 0.52 s per non-DP step, DP 1.22x vs 1.32x the
            # non-DP step (benchmarks/results/dp_step_cpu.json). Set here, before a cached LoRA is loaded, so
            # a cached run and a fresh one compute the same features.
            from diffusers.models.attention_processor import AttnProcessor

            base.unet.set_attn_processor(AttnProcessor())

    def train(self, mode: bool = True) -> None:
        self.base.unet.train(mode)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(self.device).startswith("cuda"))

    def inputs(self, lat: LatentSet, idx, g, training=True, timestep=None, text=None) -> dict:
        """One batch's inputs: clean latents (a posterior sample when training), noise, timesteps, noisy
        latents, text states and labels, drawn from ``g`` in a fixed order."""
        dev = self.device
        mean, std = lat.mean[idx].to(dev).float(), lat.std[idx].to(dev).float()
        x0 = (mean + std * torch.randn(mean.shape, generator=g).to(dev)) * self.scaling if training else mean * self.scaling
        noise = torch.randn(x0.shape, generator=g).to(dev)
        if timestep is None:
            t = torch.randint(0, self.sched.config.num_train_timesteps, (len(idx),), generator=g).to(dev)
        else:
            t = torch.full((len(idx),), timestep, dtype=torch.long, device=dev)
        states = (lat.text[idx] if text is None else text.expand(len(idx), -1, -1)).to(dev).float()
        return {"latents": x0, "noise": noise, "timesteps": t, "noisy_latents": self.sched.add_noise(x0, noise, t),
                "text": states, "labels": {k: v[idx].to(dev) for k, v in lat.labels.items()}}

    def forward(self, inp: dict) -> dict:
        """The UNet's prediction and the adapted layers' outputs: the StepContext fields this track fills."""
        with self._autocast():
            pred = self.base.unet(inp["noisy_latents"], inp["timesteps"], inp["text"]).sample
        spatial, _ = self.hooks.pop()
        return {"latents": inp["latents"], "noisy_latents": inp["noisy_latents"], "timesteps": inp["timesteps"],
                "noise": inp["noise"], "prediction": pred.float(), "spatial": [h.float() for h in spatial]}

    def base_loss(self, ctx) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The diffusion MSE, and it as the one component of the base loss."""
        mse = F.mse_loss(ctx.prediction, ctx.noise)
        return mse, {"mse": mse}

    @torch.no_grad()
    def features(self, trainer, lat: LatentSet, timestep: int, null_text: torch.Tensor | None = None,
                 batch: int = 256) -> torch.Tensor:
        """Pooled LoRA features at a fixed timestep and seeded noise, from the posterior mean.

        ``null_text``: text states of the empty prompt (the default for PT / probe); None: the split's
        own training prompts."""
        self.train(False)
        g = torch.Generator().manual_seed(4321)
        out = [trainer._context(lat, torch.arange(i, min(i + batch, len(lat))), g, training=False, timestep=timestep,
                                text=null_text).features.cpu() for i in range(0, len(lat), batch)]
        return torch.cat(out)

    def remove(self) -> None:
        self.hooks.remove()
