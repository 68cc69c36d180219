"""Load a base model (VAE, text encoder, tokenizer, UNet, noise-schedule config) from a local folder.

Both bases are diffusers-format folders read with ``from_pretrained`` and never from a hub:
``tiny-synthface`` ships inside the package, ``sd15`` is a folder the user gives
(``--base-path DIR`` or ``$DECOBENCH_SD15``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

TINY_DIR = Path(__file__).parent / "tiny_synthface"
REQUIRED = {
    "model_index.json": "pipeline index",
    "scheduler/scheduler_config.json": "noise scheduler config",
    "tokenizer/vocab.json": "CLIP tokenizer vocabulary",
    "tokenizer/merges.txt": "CLIP tokenizer merges",
    "text_encoder/config.json": "CLIP text encoder config",
    "vae/config.json": "VAE config",
    "unet/config.json": "UNet config",
}
WEIGHTS = {"text_encoder": "model", "vae": "diffusion_pytorch_model", "unet": "diffusion_pytorch_model"}
BASES = {"tiny-synthface": "embedded tiny latent diffusion model pretrained on a disjoint SynthFaces population",
         "sd15": "Stable Diffusion v1-5 from a local diffusers-format folder (--base-path or $DECOBENCH_SD15)"}


class BaseModelError(Exception):
    pass


@dataclass
class BaseModel:
    name: str
    path: Path
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    unet: torch.nn.Module
    scheduler_config: dict
    resolution: int

    def weights_digest(self) -> str:
        """sha256 over every weight and config file of the folder: a retrained base changes it."""
        return folder_digest(self.path)

    def freeze_frozen_parts(self) -> None:
        """VAE and text encoder are frozen in every method (DECO-Bench §4.2)."""
        for m in (self.vae, self.text_encoder, self.unet):
            m.requires_grad_(False)
        self.vae.eval()
        self.text_encoder.eval()


_DIGESTS: dict[tuple, str] = {}


def folder_digest(folder: Path) -> str:
    """sha256 of (relative path, sha256) of every file under ``folder``; memoised per (path, size, mtime)."""
    import hashlib

    from decobench.io import sha256_file

    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for p in files:
            h.update(f"{p.relative_to(folder)}:{sha256_file(p)}\n".encode())
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def missing_files(folder: Path) -> list[str]:
    out = [f"{rel} ({what})" for rel, what in REQUIRED.items() if not (folder / rel).is_file()]
    for sub, stem in WEIGHTS.items():
        if not any((folder / sub / f"{stem}{ext}").is_file() for ext in (".safetensors", ".bin", ".fp16.safetensors")):
            out.append(f"{sub}/{stem}.safetensors (weights)")
    return out


def resolve_base_path(name: str, base_path: str | Path | None = None) -> Path:
    if name not in BASES:
        raise BaseModelError(f"unknown base model {name!r}; known: {', '.join(BASES)}")
    if name == "tiny-synthface":
        path = Path(base_path) if base_path else TINY_DIR
    else:
        env = os.environ.get("DECOBENCH_SD15")
        if not (base_path or env):
            raise BaseModelError("sd15 needs a local Stable Diffusion v1-5 folder in diffusers format: pass "
                                 "--base-path DIR or set DECOBENCH_SD15=DIR (nothing is downloaded)")
        path = Path(base_path or env).expanduser()
    if not path.is_dir():
        raise BaseModelError(f"{name}: {path} is not a folder")
    missing = missing_files(path)
    if missing:
        hint = (" — rebuild it with: decobench base train tiny-synthface" if name == "tiny-synthface"
                else " — copy the full diffusers-format stable-diffusion-v1-5 folder there")
        raise BaseModelError(f"{name} at {path} is incomplete; missing:\n  " + "\n  ".join(missing) + hint)
    return path


# DECO-Bench A.3 trains and releases SD v1-5 at 128x128 (its config's sample_size 64 means 512 px)
DEFAULT_RESOLUTION = {"sd15": 128}


def load_base(name: str = "tiny-synthface", base_path: str | Path | None = None,
              device: str = "cpu", dtype: torch.dtype = torch.float32, resolution: int | None = None) -> BaseModel:
    """``resolution``: training/release size in pixels; None: 128 for sd15, the UNet's native size otherwise."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    path = resolve_base_path(name, base_path)
    kw = {"local_files_only": True}
    tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer", **kw)
    text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", dtype=dtype, **kw).to(device)
    vae = AutoencoderKL.from_pretrained(path / "vae", torch_dtype=dtype, **kw).to(device)
    unet = UNet2DConditionModel.from_pretrained(path / "unet", torch_dtype=dtype, **kw).to(device)
    import json
    sched = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    resolution = resolution or DEFAULT_RESOLUTION.get(name) or int(unet.config.sample_size) * factor
    if resolution % factor:
        raise BaseModelError(f"resolution {resolution} must be a multiple of the VAE's downsampling factor {factor}")
    return BaseModel(name, path, vae, text_encoder, tokenizer, unet, sched, resolution)
