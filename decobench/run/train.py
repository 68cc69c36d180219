"""LoRA decoupling training (DECO-Bench §4.2, A.3) on cached VAE latents and text embeddings.

Two players, two optimisers:
  generator = LoRA adapters + the method's generator modules; minimises
              diffusion MSE + sum(method.generator_losses(features, race))
  adversary = the method's adversary modules; minimises sum(method.adversary_losses(features.detach(), race))
Every method also gets a *shadow probe* (a linear race classifier on detached features, never
seen by the generator) so that the adversary's view is comparable across methods, baseline included.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from decobench.methods.base import concat
from decobench.models.lora import LoraFeatures, add_lora, parameter_counts


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class LatentSet:
    """Frozen inputs of one split: VAE posterior mean/std (unscaled), text states, race labels."""

    mean: torch.Tensor
    std: torch.Tensor
    text: torch.Tensor
    race: torch.Tensor

    def __len__(self) -> int:
        return len(self.race)

    def subset(self, idx) -> "LatentSet":
        return LatentSet(self.mean[idx], self.std[idx], self.text[idx], self.race[idx])


def _noise_batch(lat: LatentSet, idx, scaling, sched, g, device):
    mean, std = lat.mean[idx].to(device).float(), lat.std[idx].to(device).float()
    x0 = (mean + std * torch.randn(mean.shape, generator=g).to(device)) * scaling
    noise = torch.randn(x0.shape, generator=g).to(device)
    t = torch.randint(0, sched.config.num_train_timesteps, (len(idx),), generator=g).to(device)
    return sched.add_noise(x0, noise, t), noise, t


class Trainer:
    def __init__(self, base, method, cfg, device="cpu", seed=0, log=print):
        from diffusers import DDPMScheduler

        self.base, self.method, self.cfg, self.device, self.log = base, method, cfg, device, log
        self.seed = seed
        sc = {k: v for k, v in base.scheduler_config.items() if not k.startswith("_")}
        self.sched = DDPMScheduler.from_config(sc)
        self.scaling = base.vae.config.scaling_factor
        base.freeze_frozen_parts()
        self.targets = add_lora(base.unet, rank=cfg.lora_rank)
        self.counts = parameter_counts(base.unet)
        self.hooks = LoraFeatures(base.unet, self.targets,
                                  method.transform_first if method.uses_transform() else None)
        self.method.to(device)
        self.probe = torch.nn.Linear(sum(self.hooks.dims), method.n_sensitive).to(device)
        self.lora_params = [p for p in base.unet.parameters() if p.requires_grad]
        self.counts["method_generator_params"] = sum(p.numel() for p in method.generator_parameters())
        self.counts["method_adversary_params"] = sum(p.numel() for p in method.adversary_parameters())

    def _forward(self, lat: LatentSet, idx, g):
        noisy, noise, t = _noise_batch(lat, idx, self.scaling, self.sched, g, self.device)
        pred = self.base.unet(noisy, t, lat.text[idx].to(self.device).float()).sample
        return F.mse_loss(pred.float(), noise), self.hooks.pop()

    def _autocast(self):
        on_cuda = str(self.device).startswith("cuda")
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda)

    @torch.no_grad()
    def evaluate(self, val: LatentSet) -> dict:
        """Diffusion MSE on V with fixed noise, and the adversary's / probe's race accuracy on V."""
        self.base.unet.eval()
        g = torch.Generator().manual_seed(1234)
        mse, n, adv_ok, probe_ok = 0.0, 0, 0, 0
        for i in range(0, len(val), 256):
            idx = torch.arange(i, min(i + 256, len(val)))
            with self._autocast():
                loss, feats = self._forward(val, idx, g)
            feats = [f.float() for f in feats]
            race = val.race[idx].to(self.device)
            mse += loss.item() * len(idx)
            n += len(idx)
            logits = self.method.adversary_logits(feats)
            if logits is not None:
                adv_ok += (logits.argmax(1) == race).sum().item()
            probe_ok += (self.probe(concat(feats)).argmax(1) == race).sum().item()
        has_adv = self.method.adversary_parameters() != []
        self.base.unet.train()
        return {"val_mse": mse / n, "val_adversary_acc": adv_ok / n if has_adv else None,
                "val_shadow_probe_acc": probe_ok / n}

    def fit(self, train: LatentSet, val: LatentSet) -> dict:
        from diffusers.optimization import get_scheduler

        cfg = self.cfg
        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        gen_params = self.lora_params + self.method.generator_parameters()
        opt_g = torch.optim.AdamW(gen_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        lr_g = get_scheduler("constant_with_warmup", opt_g, num_warmup_steps=cfg.warmup_steps)
        adv_params = self.method.adversary_parameters() + list(self.probe.parameters())
        opt_a = torch.optim.AdamW(adv_params, lr=cfg.adversary_lr, weight_decay=cfg.weight_decay)
        self.base.unet.train()
        best, best_state, since, history = math.inf, None, 0, []
        step_losses: dict[str, list[float]] = {}
        bar = tqdm(range(1, cfg.max_steps + 1), desc="train LoRA", unit="step", leave=False)
        for step in bar:
            idx = torch.randint(0, len(train), (min(cfg.batch_size, len(train)),), generator=g)
            race = train.race[idx].to(self.device)
            with self._autocast():
                mse, feats = self._forward(train, idx, g)
            feats = [f.float() for f in feats]
            gen_terms = self.method.generator_losses(feats, race)
            loss_g = mse + sum(gen_terms.values(), torch.zeros((), device=self.device))
            detached = [f.detach() for f in feats]
            adv_terms = self.method.adversary_losses(detached, race)
            adv_terms["shadow_probe_ce"] = F.cross_entropy(self.probe(concat(detached)), race)
            loss_a = sum(adv_terms.values())
            if not (torch.isfinite(loss_g) and torch.isfinite(loss_a)):
                raise NonFiniteLossError(
                    f"non-finite loss at step {step} (generator {loss_g.item()}, adversary {loss_a.item()}); "
                    f"nothing was saved. Lower --set lr (now {cfg.lr}) or adv_weight (now {cfg.adv_weight}).")
            # generator step: LoRA + generator modules; adversary grads from this pass are discarded
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(gen_params, cfg.grad_clip)
            opt_g.step()
            lr_g.step()
            # adversary step on detached features: never reaches the LoRA
            opt_a.zero_grad(set_to_none=True)
            loss_a.backward()
            torch.nn.utils.clip_grad_norm_(adv_params, cfg.grad_clip)
            opt_a.step()
            for k, v in {"mse": mse, **gen_terms, **adv_terms}.items():
                step_losses.setdefault(k, []).append(float(v.detach()))
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                ev = self.evaluate(val)
                ev.update({"step": step, **{k: float(np.mean(v)) for k, v in step_losses.items()}})
                step_losses = {}
                history.append(ev)
                bar.set_postfix(val_mse=f"{ev['val_mse']:.4f}", probe=f"{ev['val_shadow_probe_acc']:.2f}")
                if ev["val_mse"] < best - cfg.min_delta:
                    best, since = ev["val_mse"], 0
                    best_state = self._snapshot()
                else:
                    since += 1
                    if since >= cfg.patience:
                        break
        if best_state is not None:
            self._restore(best_state)
        return {"history": history, "best_val_mse": best, "steps": step, "parameter_counts": self.counts}

    def _snapshot(self):
        return {"lora": [p.detach().clone() for p in self.lora_params],
                "method": copy.deepcopy(self.method.state_dict()), "probe": copy.deepcopy(self.probe.state_dict())}

    def _restore(self, s):
        with torch.no_grad():
            for p, v in zip(self.lora_params, s["lora"]):
                p.copy_(v)
        self.method.load_state_dict(s["method"])
        self.probe.load_state_dict(s["probe"])

    @torch.no_grad()
    def features(self, lat: LatentSet, timestep: int | None = None, batch: int = 256) -> torch.Tensor:
        """Pooled LoRA features (for Privacy PT and the linear probe), seeded noise at ``timestep`` or random."""
        self.base.unet.eval()
        g = torch.Generator().manual_seed(4321)
        out = []
        for i in range(0, len(lat), batch):
            idx = torch.arange(i, min(i + batch, len(lat)))
            mean, std = lat.mean[idx].to(self.device).float(), lat.std[idx].to(self.device).float()
            x0 = mean * self.scaling
            noise = torch.randn(x0.shape, generator=g).to(self.device)
            if timestep is None:  # the training distribution of noise levels, with a fixed seed
                t = torch.randint(0, self.sched.config.num_train_timesteps, (len(idx),), generator=g).to(self.device)
            else:
                t = torch.full((len(idx),), timestep, dtype=torch.long, device=self.device)
            with self._autocast():
                self.base.unet(self.sched.add_noise(x0, noise, t), t, lat.text[idx].to(self.device).float())
            out.append(concat([f.float() for f in self.hooks.pop()]).cpu())
        return torch.cat(out)
