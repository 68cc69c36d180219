"""``decobench run --track model`` end to end for DPLH (the model track's most demanding method: private
encoder, landmarks, pose and non-face patches in training, reference models and Test), at a tiny budget:
a valid result file with the model-track suite, the DP record, DPLH's own Test metrics, and a cache hit."""

import json

import pytest

from decobench.results.schema import validate
from decobench.run.runner import run_benchmark

SETS = {"model.widths": "8,16", "model.image_size": "16", "train.max_steps": "12", "train.eval_every": "6",
        "train.max_train_images": "120", "train.max_val_images": "40", "eval.max_test_images": "80",
        "eval.mia_references": "2", "eval.mia_samples": "40", "eval.inversion_aux_images": "60",
        "eval.inversion_epochs": "2", "eval.linkage_distractors": "40", "eval.fr_models": "resnet-arcface"}


@pytest.mark.slow
def test_dplh_runs_end_to_end_on_the_model_track(tmp_path):
    logs = []
    result, run_dir = run_benchmark("dplh", "A", profile="quick", out=tmp_path, device="cpu", overrides=dict(SETS),
                                    log=logs.append, track="model")
    on_disk = json.loads((run_dir / "result.json").read_text())
    validate(on_disk)
    assert on_disk["track"] == "model" and on_disk["regime"] == "model"
    m = on_disk["evaluations"][0]["metrics"]
    for k in ("privacy_probe_race", "utility_heads_age", "utility_heads_gender", "privacy_mia_model_loss_auc",
              "privacy_mia_model_lira_online_auc", "privacy_inversion_ssim", "dplh_detection", "dplh_landmarks_mse",
              "dplh_pose_mae_deg"):
        assert m[k]["value"] is not None, k
    assert on_disk["evaluations"][0]["attack_info"]["feature_inversion"]["aux_images"] == 60  # its budget, no more
    dp = on_disk["dp"]
    assert dp["private_players"] == ["generator"] and dp["epsilon"] <= 5.0 + 1e-6
    assert dp["n_train"] == 120 + 40  # faces and non-face patches are both drawn (q = B / N)
    history = json.loads((run_dir / "training.json").read_text())["history"]
    assert any(k.startswith("sigma2_") for k in history[-1])
    again, _ = run_benchmark("dplh", "A", profile="quick", out=tmp_path, device="cpu", overrides=dict(SETS),
                             log=lambda *a: None, track="model")
    assert again["training"] == on_disk["training"]  # the trained encoder came from the cache
