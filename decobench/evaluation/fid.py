"""Fréchet distance between released G and G_real.

With the standard Inception-v3 weights in the local torch cache (torch-fidelity's file
``weights-inception-2015-12-05-6726825d.pth`` under ``$TORCH_HOME/hub/checkpoints/``) this is FID
computed by torch-fidelity. Without them (nothing is downloaded) it is ``fd_resnet18_real``: the same
Fréchet formula (torch-fidelity's functions) on penultimate features of the run's Baseline (Real)
ResNet18 classifiers. The two are never mixed: the metric name says which one a number is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def local_inception_weights() -> Path | None:
    p = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return p if p.is_file() else None


class _Uint8Images(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1)


def inception_fid(released: np.ndarray, real: np.ndarray, weights: Path, device="cpu") -> float:
    import torch_fidelity

    m = torch_fidelity.calculate_metrics(input1=_Uint8Images(released), input2=_Uint8Images(real), fid=True,
                                         feature_extractor_weights_path=str(weights), verbose=False,
                                         cuda=str(device).startswith("cuda"), cache=False)
    return float(m["frechet_inception_distance"])


def frechet_distance(feat_a: torch.Tensor, feat_b: torch.Tensor) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    sa = fid_features_to_statistics(feat_a.double().cpu())
    sb = fid_features_to_statistics(feat_b.double().cpu())
    return float(fid_statistics_to_metric(sa, sb, verbose=False)["frechet_inception_distance"])


@torch.no_grad()
def penultimate(models: list[torch.nn.Module], x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Concatenated 512-d penultimate features of torchvision ResNet18s."""
    outs = []
    for m in models:
        m.eval()
        fc, m.fc = m.fc, torch.nn.Identity()
        try:
            outs.append(torch.cat([m(x[i:i + batch]) for i in range(0, len(x), batch)]))
        finally:
            m.fc = fc
    return torch.cat(outs, 1)
