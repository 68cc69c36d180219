"""The main job end to end on the embedded default (quick profile), and its cache / resume."""

import json
import shutil

import pytest
import torch

from decobench.models.base import TINY_DIR, missing_files
from decobench.results.schema import ResultValidationError, validate
from decobench.run.runner import run_benchmark

pytestmark = pytest.mark.skipif(bool(missing_files(TINY_DIR)), reason="tiny-synthface weights not built")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result, run_dir = run_benchmark("ce_mask", "A", profile="quick", out=out, device="cpu", log=lambda *a: None)
    return out, result, run_dir


def test_result_file_is_complete_and_valid(quick_run):
    out, result, run_dir = quick_run
    on_disk = json.loads((run_dir / "result.json").read_text())
    validate(on_disk)
    assert run_dir == out / "A" / "ce_mask" / "seed0"
    ev = on_disk["evaluations"][0]
    assert ev["dataset"] == "synthfaces-a"
    for k in ("privacy_cls_race", "privacy_pt_race", "privacy_probe_race", "utility_cls_age", "utility_cls_gender"):
        v = ev["metrics"][k]["value"]
        assert 0.0 <= v <= 1.0
    assert any(k == "fid" or k.startswith("fd_") for k in ev["metrics"])
    counts = on_disk["parameter_counts"]
    assert counts["lora_trainable"] == 8 * sum([64, 64, 64, 64, 64, 64, 64])  # rank 4 x (in + out) x 7 proj_out
    assert counts["method_generator_params"] > 0 and counts["method_adversary_params"] > 0
    assert set(on_disk["stage_seconds"]) >= {"latents", "train", "release", "classifiers", "total"}
    assert on_disk["split_hashes"]["synthfaces-a"]["gen.txt"]


def test_lora_loads_in_a_plain_diffusers_pipeline(quick_run):
    from diffusers import StableDiffusionPipeline

    _, _, run_dir = quick_run
    pipe = StableDiffusionPipeline.from_pretrained(TINY_DIR, safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    before = {n: p.clone() for n, p in pipe.unet.named_parameters() if "proj_out" in n}
    pipe.load_lora_weights(str(run_dir))
    pipe.fuse_lora(lora_scale=1.0)
    pipe.unload_lora_weights()  # keeps the fused weights, drops the adapter wrappers
    assert set(before) <= {n for n, _ in pipe.unet.named_parameters()}
    changed = [n for n, p in pipe.unet.named_parameters() if n in before and not torch.equal(before[n], p)]
    assert len(changed) == 7  # the fused LoRA changed every proj_out weight


def test_released_set_on_disk(quick_run):
    out, result, _ = quick_run
    import pandas as pd

    rel = [p for p in (out / ".cache").glob("release-*") if (p / "DONE").is_file()]
    assert len(rel) == 1
    labels = pd.read_csv(rel[0] / "labels.csv")
    assert len(labels) == result["evaluations"][0]["released_images"]
    assert labels["prompt"].str.match(r"A \d").all() and (rel[0] / labels["file"][0]).is_file()


def test_rerun_reuses_stages_and_resumes_after_a_kill(quick_run):
    out, result, _ = quick_run
    # a killed run leaves a partial stage: it must be discarded and redone, never read as whole
    train = next(p for p in (out / ".cache").glob("train-*") if p.is_dir() and not p.name.endswith(".partial"))
    shutil.move(train, train.with_name(train.name + ".partial"))
    (train.with_name(train.name + ".partial") / "DONE").unlink()
    again, _ = run_benchmark("ce_mask", "A", profile="quick", out=out, device="cpu", log=lambda *a: None)
    assert again["evaluations"][0]["metrics"]["privacy_cls_race"] == result["evaluations"][0]["metrics"]["privacy_cls_race"]
    # released images and classifiers came from the cache: no time spent there
    assert again["stage_seconds"]["classifiers"] < 5 and again["stage_seconds"]["baseline_real"] < 5
    assert again["stage_seconds"]["train"] > 1  # training was redone


def test_baseline_real_is_shared_between_methods(quick_run):
    out, _, _ = quick_run
    r, _ = run_benchmark("baseline", "A", profile="quick", out=out, device="cpu", log=lambda *a: None)
    assert r["stage_seconds"]["baseline_real"] < 5  # cached from the ce_mask run
    assert r["evaluations"][0]["metrics"]["privacy_pt_race"]["value"] is None  # n/a: no adversary


def test_schema_reports_every_problem():
    with pytest.raises(ResultValidationError) as exc:
        validate({"schema_version": 1, "method": 3})
    assert "method" in str(exc.value) and "setup" in str(exc.value)


def test_leaderboard_groups_and_renders(quick_run):
    from click.testing import CliRunner

    from decobench.cli.main import cli

    out, _, _ = quick_run
    res = CliRunner().invoke(cli, ["leaderboard", "--runs", str(out)])
    assert res.exit_code == 0, res.output
    assert "Setup A, regime G, evaluated on synthfaces-a" in res.output
    assert "| Baseline (Real) |" in res.output and "| ce_mask | 0 |" in res.output


@pytest.mark.parametrize("setup,evaluated", [("B", ["synthfaces-b"]), ("C", ["synthfaces-a", "synthfaces-b"])])
def test_setups_b_and_c(tmp_path, setup, evaluated):
    small = {"max_steps": 6, "eval_every": 3, "max_train_images": 128, "max_val_images": 32,
             "release.max_images_per_split": 48, "release.num_inference_steps": 4,
             "eval.max_test_images": 64, "eval.max_gen_val_images": 32, "eval.classifier.max_epochs": 1}
    r, run_dir = run_benchmark("metric", setup, profile="quick", out=tmp_path, device="cpu", overrides=small,
                               log=lambda *a: None)
    assert [e["dataset"] for e in r["evaluations"]] == evaluated
    assert r["datasets"]["train"] == (["synthfaces-a", "synthfaces-b"] if setup == "C" else ["synthfaces-a"])
    assert r["config"]["train"]["max_steps"] == 6 and (run_dir / "result.json").is_file()
