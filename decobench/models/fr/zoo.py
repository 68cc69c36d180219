"""The face-recognition zoo: committed models, dlib's descriptor and user weights behind one interface.

A :class:`FaceRecognizer` maps uint8 face images (any size) to unit-norm embeddings; zoo models also
expose ``embed_tensor`` (differentiable, for cloaks and white-box attacks). Names:

- a zoo model (``decobench fr list``): weights in ``decobench/models/fr/weights/<name>.safetensors``,
  described by ``manifest.json`` (command, data seed, epochs, accuracies, sha256);
- ``dlib``: dlib's 128-d ResNet face descriptor from ``face-recognition-models`` (install
  ``pip install 'decobench[dlib]'``), a black-box model trained on real faces;
- ``torchscript:<path>@<size>``: your own TorchScript model taking float [N,3,size,size] in [-1, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from decobench.models.base import BaseModelError
from decobench.models.fr.train import ZooSpec, to_unit

WEIGHTS = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS / "zoo.json"  # population, protocol, attribute-only floor; each model has <name>.json

# three backbone families x the losses of the OPOM paper's zoo: the resnet trio are the surrogates,
# the others differ in backbone (and loss) and serve as black-box targets: six per surrogate
ZOO = [ZooSpec("resnet-arcface", "resnet", "arcface", epochs=5),
       ZooSpec("resnet-cosface", "resnet", "cosface", epochs=5),
       ZooSpec("resnet-softmax", "resnet", "softmax", epochs=5),
       ZooSpec("mobilenet-softmax", "mobilenet", "softmax"),
       ZooSpec("senet-arcface", "senet", "arcface"), ZooSpec("senet-cosface", "senet", "cosface"),
       ZooSpec("senet-softmax", "senet", "softmax")]
SPECS = {s.name: s for s in ZOO}


class FaceRecognizer:
    name: str
    differentiable = False

    def embed(self, images: np.ndarray, batch: int = 512) -> torch.Tensor:
        """uint8 [N,H,W,3] -> float [N,d] unit-norm embeddings (CPU)."""
        raise NotImplementedError


class ZooRecognizer(FaceRecognizer):
    differentiable = True

    def __init__(self, name: str, net, device: str = "cpu"):
        self.name, self.net, self.device = name, net.to(device).eval().requires_grad_(False), device

    def embed_tensor(self, x01: torch.Tensor) -> torch.Tensor:
        return self.net.embed_tensor(x01)

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch: int = 512) -> torch.Tensor:
        out = [self.net.embed_tensor(to_unit(images[i:i + batch]).to(self.device)).cpu()
               for i in range(0, len(images), batch)]
        return torch.cat(out) if out else torch.empty(0, self.net.dim)


class TorchScriptRecognizer(FaceRecognizer):
    differentiable = True

    def __init__(self, path: str, size: int, device: str = "cpu"):
        p = Path(path).expanduser()
        if not p.is_file():
            raise BaseModelError(f"FR model file {p} not found; give torchscript:<path to a torch.jit.save file>@<input size>")
        self.name, self.size, self.device = f"torchscript:{p.name}", size, device
        self.net = torch.jit.load(str(p), map_location=device).eval()

    def embed_tensor(self, x01: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x01, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return torch.nn.functional.normalize(self.net(x * 2 - 1).float(), dim=1)

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch: int = 256) -> torch.Tensor:
        return torch.cat([self.embed_tensor(to_unit(images[i:i + batch]).to(self.device)).cpu()
                          for i in range(0, len(images), batch)])


class DlibRecognizer(FaceRecognizer):
    """dlib's face descriptor on the whole image resized to its 150x150 aligned chip (faces are centred)."""

    def __init__(self):
        import importlib.util

        # the model file is located without importing face_recognition_models (it needs pkg_resources)
        spec = importlib.util.find_spec("face_recognition_models")
        path = (Path(next(iter(spec.submodule_search_locations))) / "models" /
                "dlib_face_recognition_resnet_model_v1.dat") if spec else None
        try:
            import dlib
        except ImportError:
            dlib = None
        if dlib is None or path is None or not path.is_file():
            raise BaseModelError("the dlib FR model needs the optional extra: pip install 'decobench[dlib]' "
                                 "(face-recognition-models and dlib-bin; "
                                 f"missing: {'dlib' if dlib is None else 'face-recognition-models'})")
        self.name = "dlib"
        self.model = dlib.face_recognition_model_v1(str(path))

    def embed(self, images: np.ndarray, batch: int = 512) -> torch.Tensor:
        from PIL import Image

        out = []
        for img in images:
            chip = np.asarray(Image.fromarray(img).resize((150, 150), Image.BILINEAR))
            out.append(np.asarray(self.model.compute_face_descriptor(np.ascontiguousarray(chip))))
        return torch.nn.functional.normalize(torch.tensor(np.stack(out), dtype=torch.float32), dim=1)


def manifest(folder: Path = WEIGHTS) -> dict:
    """The zoo's manifest: ``zoo.json`` plus every model's ``<name>.json`` under ``models``."""
    man = json.loads((folder / MANIFEST.name).read_text()) if (folder / MANIFEST.name).is_file() else {}
    man["models"] = {s.name: json.loads((folder / f"{s.name}.json").read_text()) for s in ZOO
                     if (folder / f"{s.name}.json").is_file()}
    return man


def load_zoo_model(name: str, device: str = "cpu") -> ZooRecognizer:
    from safetensors.torch import load_file

    from decobench.models.fr.nets import FRNet

    if name not in SPECS:
        raise BaseModelError(f"unknown FR model {name!r}; zoo models: {', '.join(SPECS)}; also dlib, "
                             "torchscript:<path>@<size>")
    path = WEIGHTS / f"{name}.safetensors"
    if not path.is_file():
        raise BaseModelError(f"FR zoo weights missing at {path}; rebuild them with: decobench fr train --model {name}")
    spec = SPECS[name]
    net = FRNet(spec.family, spec.dim, spec.input_size)
    net.load_state_dict(load_file(str(path)))
    return ZooRecognizer(name, net, device)


def check_available(names) -> None:
    """Every named model can be loaded (zoo weights present, extras installed, files found), else one error."""
    for n in names:
        if n in SPECS:
            if not (WEIGHTS / f"{n}.safetensors").is_file():
                raise BaseModelError(f"FR zoo weights missing at {WEIGHTS / f'{n}.safetensors'}; rebuild them with: "
                                     f"decobench fr train --model {n}")
        else:
            load_recognizer(n)


def weights_sha256(name: str) -> str | None:
    """The committed sha256 of a zoo model's weights (None for dlib / TorchScript): results record it."""
    return manifest()["models"].get(name, {}).get("sha256")


def weights_identity(name: str) -> str:
    """What identifies an FR model's weights in a cache key: a zoo model's committed sha256, a TorchScript
    file's own sha256, dlib's package version."""
    if name == "dlib":
        from importlib.metadata import PackageNotFoundError, version
        try:
            return f"dlib {version('dlib')}"
        except PackageNotFoundError:
            return "dlib"
    if name.startswith("torchscript:"):
        from decobench.io import sha256_file

        path = Path(name.removeprefix("torchscript:").rpartition("@")[0]).expanduser()
        return sha256_file(path) if path.is_file() else name
    return weights_sha256(name) or name


def load_recognizer(name: str, device: str = "cpu") -> FaceRecognizer:
    if name == "dlib":
        return DlibRecognizer()
    if name.startswith("torchscript:"):
        path, _, size = name.removeprefix("torchscript:").rpartition("@")
        if not path or not size.isdigit():
            raise BaseModelError(f"bad FR model {name!r}; write torchscript:<path>@<input size>, e.g. "
                                 "torchscript:~/fr/arcface.pt@112")
        return TorchScriptRecognizer(path, int(size), device)
    return load_zoo_model(name, device)
