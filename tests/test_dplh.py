"""DPLH: the uncertainty weighting is eq. 7 of the paper over every task (the base loss's components too), the
whole model trains privately with exact per-example gradients, the sigma_i move, flipped images keep their
geometric labels right, and the model track builds DPLH's training set (landmarks, pose, non-face patches)."""


import math
import numpy as np
import pytest
import torch

from decobench.methods.base import MethodSpec
from decobench.registry import methods
from decobench.run.config import TrainConfig
from decobench.run.encoder_backbone import EncoderBackbone, ImageSet, flip_labels
from decobench.run.train import Trainer

SPEC = MethodSpec([16], {"race": 3, "gender": 2, "age": 4}, "race", ("age", "gender"), {"source_shape": (3, 16, 16)})


def _data(n=96, nonfaces=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n + nonfaces, 16, 16, 3), generator=g, dtype=torch.uint8)
    face = (torch.arange(n + nonfaces) < n).long()
    images[:, :4, :4, 1] = (face * 200).to(torch.uint8)[:, None, None]  # a face is readable from one corner
    lab = {"race": torch.arange(n) % 3, "gender": torch.arange(n) % 2, "age": torch.arange(n) % 4}
    lab = {k: torch.cat([v, torch.full((nonfaces,), -1)]) for k, v in lab.items()}
    lab["face"] = face
    lab["landmarks"] = torch.rand(n + nonfaces, 10, generator=g) * 2 - 1
    lab["pose"] = torch.rand(n + nonfaces, 3, generator=g) - 0.5
    data = ImageSet(images, lab)
    perm = torch.randperm(n + nonfaces, generator=g)
    return data.subset(perm[:90]), data.subset(perm[90:])


def _trainer(params=None, steps=6, lr=1e-3):
    method = methods.get("dplh")(SPEC, params)
    cfg = TrainConfig(lr=lr, max_steps=steps, batch_size=16, warmup_steps=0, eval_every=3, select_after=0.0)
    return Trainer(EncoderBackbone(SPEC, method, widths=(8, 16)), method, cfg, seed=0)


def test_the_generator_loss_is_equation_7_over_every_task():
    tr = _trainer()
    s = tr.method.generator["log_var"]
    with torch.no_grad():
        for k, v in zip(s, torch.linspace(-1, 1, len(s))):
            s[k].fill_(float(v))
    train, _ = _data()
    ctx = tr._forward(tr._inputs(train, torch.arange(32), torch.Generator().manual_seed(0)))
    base, terms = tr._terms(ctx)
    total = base + sum(terms["generator"].values())
    parts = {**tr.method.task_losses(ctx.features, ctx.labels), **ctx.base_losses}
    assert set(parts) == set(s) == {"detection", "landmarks", "pose", "age_ce", "gender_ce"}
    expect = sum(0.5 * torch.exp(-s[k]) * v + s[k] for k, v in parts.items())
    assert torch.allclose(total, expect, atol=1e-6)
    # non-faces contribute to detection only: the utility CE is the faces' sum over the batch size
    face = ctx.labels["face"].bool()
    logits = tr.backbone.head_logits(ctx.features)
    ce = torch.nn.functional.cross_entropy(logits["age"][face], ctx.labels["age"][face], reduction="sum")
    assert 0 < face.sum() < 32 and torch.allclose(ctx.base_losses["age_ce"], ce / 32)


def test_dplh_trains_the_whole_model_privately_with_exact_per_example_gradients_and_its_sigmas_move():
    params = methods.get("dplh").Params(target_epsilon=None, noise_multiplier=0.5)
    tr = _trainer(params, steps=30, lr=1e-2)
    train, val = _data()
    inp = tr._inputs(train, torch.arange(12), torch.Generator().manual_seed(0))
    samples, _ = tr._generator_grad_samples(inp, 1, "joint")
    ctx = tr._forward(inp)
    base, terms = tr._terms(ctx)
    params_ = [q for g in tr.groups if g.player == "generator" for q in g.params]
    for smp, b in zip(samples, torch.autograd.grad(base + sum(terms["generator"].values()), params_)):
        assert torch.allclose(smp.mean(0), b, atol=1e-6, rtol=1e-4)
    summary = tr.fit(train, val)
    rec = summary["dp"]
    assert rec["private_players"] == ["generator"] and rec["non_private_players"] == []
    names = rec["private_parameters"]
    assert any(n.startswith("backbone.encoder.") for n in names) and any("log_var" in n for n in names)
    assert any(n.startswith("method.players.generator.heads.pose") for n in names)
    assert rec["n_train"] == 90 and rec["epsilon"] > 0
    sig = {k: v for k, v in summary["history"][-1].items() if k.startswith("sigma2_")}
    # eq. 7's stationary point is sigma_i^2 = L_i / 2: the regression losses here are far below 2, so their
    # sigma^2 must fall from 1 (by more than the DP noise could move them by chance)
    assert len(sig) == 5 and sig["sigma2_landmarks"] < 0.85 and sig["sigma2_pose"] < 0.85, sig


def test_equal_weighting_has_no_sigmas():
    tr = _trainer(methods.get("dplh").Params(weighting="equal"))
    assert "log_var" not in tr.method.generator
    train, _ = _data()
    ctx = tr._forward(tr._inputs(train, torch.arange(16), torch.Generator().manual_seed(0)))
    assert set(tr._terms(ctx)[1]["generator"]) == {"detection", "landmarks", "pose"}


def test_flipping_mirrors_landmarks_and_negates_yaw_and_roll():
    lm = torch.tensor([[-0.5, -0.2, 0.4, -0.2, 0.0, 0.1, -0.3, 0.5, 0.3, 0.5]])
    pose = torch.tensor([[0.3, 0.1, -0.2]])
    out = flip_labels({"landmarks": lm, "pose": pose, "yaw_deg": torch.tensor([10.0])}, torch.tensor([True]))
    # the eye at x = 0.4 becomes the first eye at x = -0.4; the nose stays centred; the mouth corners swap
    assert out["landmarks"][0].tolist() == pytest.approx([-0.4, -0.2, 0.5, -0.2, 0.0, 0.1, -0.3, 0.5, 0.3, 0.5])
    assert out["pose"][0].tolist() == pytest.approx([-0.3, 0.1, 0.2]) and out["yaw_deg"].item() == -10.0
    back = flip_labels(out, torch.tensor([True]))
    assert torch.allclose(back["landmarks"], lm) and torch.allclose(back["pose"], pose)
    same = flip_labels({"landmarks": lm, "pose": pose}, torch.tensor([False]))
    assert torch.equal(same["landmarks"], lm) and torch.equal(same["pose"], pose)


def test_the_model_track_gives_dplh_landmarks_pose_and_nonface_patches():
    from decobench.attacks.base import RealSplit
    from decobench.data.open import open_dataset
    from decobench.run.model_track import real_split, training_set

    ds = open_dataset("synthfaces-a")
    ids = list(ds.records.image_id[:30])
    split = real_split(ds, ids, 32)
    cls = methods.get("dplh")
    data = training_set(cls, cls.Params(), {"synthfaces-a": ds}, split, 32, seed=0)
    assert len(data) == 40 and int(data.labels["face"].sum()) == 30
    assert (data.labels["age"][30:] == -1).all() and (data.labels["landmarks"][30:] == 0).all()
    lm = data.labels["landmarks"][:30].view(30, 5, 2)
    assert lm.abs().max() < 1 and (lm[:, 0, 0] < lm[:, 1, 0]).all()  # the eyes, left to right in the image
    pose = data.labels["pose"][:30]
    assert torch.allclose(pose[:, 0], torch.tensor(np.deg2rad(ds.records.yaw_deg[:30].to_numpy()), dtype=torch.float32))
    # the other methods train on the faces alone
    assert len(training_set(methods.get("ce"), methods.get("ce").Params(), {"synthfaces-a": ds}, split, 32, 0)) == 30
    # auxiliary images (an attacker's population and reference models' padding) get their landmarks too
    images, labels = ds.auxiliary(40, 32)
    aux = RealSplit(images, labels.reset_index(drop=True), list(labels["image_id"]))
    assert training_set(cls, cls.Params(), {"synthfaces-a": ds}, aux, 32, 0, aux_n=40).labels["landmarks"].abs().max() < 1


def test_task_metrics_score_dplh_own_heads_with_cis():
    tr = _trainer()
    _, val = _data()
    feats = tr.features(val)
    m = tr.method.task_metrics(feats, val.labels, resamples=50)
    det = m["dplh_detection"]
    assert det["chance"] == 0.5 and det["n"] == len(val) and 0 <= det["value"] <= 1
    for k in ("dplh_landmarks_mse", "dplh_pose_mae_deg"):
        assert m[k]["direction"] == "lower_is_better" and m[k]["ci"][0] <= m[k]["value"] <= m[k]["ci"][1]
        assert m[k]["n"] == int(val.labels["face"].sum()) and "predicting Test's mean" in m[k]["note"]
    # chance is the error of the constant prediction: Test's mean landmarks, its median pose
    face = val.labels["face"].bool()
    lm, pose = val.labels["landmarks"][face], val.labels["pose"][face]
    assert m["dplh_landmarks_mse"]["chance"] == pytest.approx(float(((lm - lm.mean(0)) ** 2).mean()), rel=1e-5)
    mae = float((pose - pose.median(0).values).abs().mean() * 180 / math.pi)
    assert m["dplh_pose_mae_deg"]["chance"] == pytest.approx(mae, rel=1e-5)


def test_secure_rng_and_sgd_are_recorded_and_secure_runs_differ():
    cls = methods.get("dplh")
    train, val = _data()
    runs = []
    for secure in (False, False, True, True):
        torch.manual_seed(0)  # the method's heads are built from the global generator, as in a fresh process
        tr = _trainer(cls.Params(target_epsilon=None, noise_multiplier=1.0, secure_rng=secure, optimizer="sgd"), steps=3)
        rec = tr.fit(train, val)["dp"]
        runs.append([p.detach().clone() for p in tr.backbone.params])
        assert rec["secure_rng"] is secure and rec["optimizer"] == "sgd"
        assert rec["randomness"] == ("os.urandom" if secure else "seeded") and ("os.urandom" in rec["covers"]) is secure
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))  # seeded: same command, same weights
    assert not all(torch.equal(a, b) for a, b in zip(runs[2], runs[3]))  # secret seeds: not reproducible
