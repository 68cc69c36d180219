"""The DP known answer on the model track: an encoder with utility heads trained wholly under DP-SGD at
ε 1 keeps the released model's membership signal (the ``mia_model`` LOSS score, Σ log p(y | x) from the
released heads) within TPR <= e^ε·FPR + δ and its AUC's CI on 0.5; the same recipe with clipping and no noise
(ε = ∞) memorises its members and the same score finds them."""

import numpy as np
import pandas as pd
import torch

from decobench.attacks.base import RealSplit
from decobench.attacks.mia_generator import mia_metrics
from decobench.attacks.mia_model import signals
from decobench.methods.base import DecouplingMethod, DPParams, MethodSpec
from decobench.run.config import TrainConfig
from decobench.run.encoder_backbone import EncoderBackbone, ImageSet
from decobench.run.model_track import released
from decobench.run.train import Trainer
from tests.dp_bound import bound_violations

N = 24  # members, and as many non-members


class _UtilityDPParams(DPParams):
    pass


class _UtilityDP(DecouplingMethod):
    """The backbone's own loss alone (utility CE of the heads), encoder and heads under DP-SGD."""

    Params = _UtilityDPParams
    dp_backbone = True


def _split(seed: int) -> RealSplit:
    """Random images with random labels: only memorisation tells a member's label."""
    rng = np.random.default_rng(seed)
    labels = pd.DataFrame({"race": rng.integers(0, 3, N), "gender": rng.integers(0, 2, N),
                           "age": rng.integers(0, 4, N)})
    return RealSplit(rng.integers(0, 256, (N, 16, 16, 3), dtype=np.uint8), labels, [f"x/{seed}/{i}" for i in range(N)])


def _attack(params: _UtilityDPParams, steps: int = 150):
    members, nonmembers = _split(0), _split(1)
    train = ImageSet(torch.from_numpy(members.images), {k: torch.tensor(members.labels[k].to_numpy())
                                                        for k in members.labels})
    spec = MethodSpec([16], {"race": 3, "gender": 2, "age": 4}, "race", ("age", "gender"),
                      {"source_shape": (3, 16, 16)})
    method = _UtilityDP(spec, params)
    cfg = TrainConfig(lr=1e-2, weight_decay=0.0, max_steps=steps, batch_size=N, warmup_steps=0, eval_every=steps,
                      select_after=1.0)
    tr = Trainer(EncoderBackbone(spec, method, widths=(8, 16)), method, cfg, seed=0)
    rec = tr.fit(train, train)["dp"]
    model = released(tr.backbone)
    pos, neg = (signals(model, s, ["age", "gender"], mirror=False)[0] for s in (members, nonmembers))
    return mia_metrics("loss", pos, neg, 500, 0)["privacy_mia_loss_auc"], rec, pos, neg


def test_dp_bounds_the_released_models_mia_and_without_noise_it_leaks():
    auc_p, rec, pos, neg = _attack(_UtilityDPParams(target_epsilon=1.0))
    auc_l, rec_l, _, _ = _attack(_UtilityDPParams(target_epsilon=None, noise_multiplier=0.0, max_grad_norm=1e6))
    assert rec["epsilon"] <= 1.01 and rec_l["epsilon"] is None and rec["sample_rate"] == 1.0
    assert any(n.startswith("backbone.encoder.") for n in rec["private_parameters"])
    assert auc_p["ci"][0] <= 0.5 <= auc_p["ci"][1], auc_p
    assert auc_l["ci"][0] > 0.5 and auc_l["value"] > auc_p["value"] + 0.15, (auc_l, auc_p)
    assert bound_violations(pos, neg, rec["epsilon"], rec["delta"]) == 0
