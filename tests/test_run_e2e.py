"""The main job end to end on the embedded default (quick profile), its cache / resume, and the leaderboard."""

import json
import shutil

import pytest
import torch

from decobench.methods.checks import QUICK_OVERRIDES
from decobench.models.base import TINY_DIR, missing_files
from decobench.results.aggregate import key_components
from decobench.results.schema import ResultValidationError, validate
from decobench.run.identity import Execution
from decobench.run.runner import run_benchmark

pytestmark = pytest.mark.skipif(bool(missing_files(TINY_DIR)), reason="tiny-synthface weights not built")
QUIET = {"log": lambda *a: None, "device": "cpu"}


# pytest -n N: the tests on the module's quick run stay on one worker; the others spread
QUICK_RUN = pytest.mark.xdist_group("run_e2e_quick_run")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result, run_dir = run_benchmark("ce_mask", "A", profile="quick", out=out, **QUIET)
    return out, result, run_dir


@QUICK_RUN
def test_result_file_is_complete_and_valid(quick_run):
    out, result, run_dir = quick_run
    on_disk = json.loads((run_dir / "result.json").read_text())
    validate(on_disk)
    assert run_dir.parent.parent == out / "A" / "ce_mask" and run_dir.parent.name.startswith("G-quick-paper-")
    ev = on_disk["evaluations"][0]
    assert ev["dataset"] == "synthfaces-a"
    for k in ("privacy_cls_race", "privacy_pt_race", "privacy_probe_race", "utility_cls_age", "utility_cls_gender",
              "privacy_pt_race_train_prompt", "privacy_probe_race_train_prompt"):
        m = ev["metrics"][k]
        assert 0.0 <= m["value"] <= 1.0 and m["ci"][0] <= m["value"] <= m["ci"][1]
        assert {"majority", "chance", "balanced_accuracy", "ci_includes_chance", "ci_includes_majority"} <= set(m)
    assert ev["metrics"]["kid_synthface"]["value"] is not None
    assert "kid_synthface" in ev["reference"]["real_vs_real"]
    assert set(ev["reference"]["baseline_real"]) == {"privacy_cls_race", "utility_cls_age", "utility_cls_gender"}
    counts = on_disk["parameter_counts"]
    assert counts["lora_trainable"] == 8 * 7 * 64  # rank 4 x (in + out) x 7 proj_out of 64 channels
    assert counts["method_generator_params"] == 8 * 64 and counts["method_adversary_params"] > 0  # FGN's LoRA
    assert on_disk["training"]["selected_step"] >= on_disk["training"]["select_from_step"] > 20
    assert on_disk["resolution"] == 32 and on_disk["sensitive"] == "race" and len(on_disk["base_weights"]) == 64
    assert set(on_disk["attacks"]) == {"cls", "pt", "probe", "quality", "identity_linkage", "mia_generator",
                                       "release_inversion"}
    for k in ("privacy_linkage_rank1", "privacy_linkage_rank5", "privacy_mia_loss_auc", "privacy_mia_pia_auc",
              "privacy_mia_secmi_auc", "privacy_mia_blind_auc", "privacy_inversion_ssim", "privacy_inversion_rank1",
              "privacy_inversion_race"):
        m = ev["metrics"][k]
        assert m["value"] is not None and m["direction"] == "lower_is_better", k
        assert m["ci"][0] <= m["value"] <= m["ci"][1], k
        assert k.endswith(("ssim", "psnr")) or m["chance"] is not None, k  # SSIM/PSNR: a floor, not a chance
    # linkage and inversion are scored beside the unprotected real sources; the gallery never holds a source
    assert "privacy_linkage_rank1" in ev["reference"]["real_source"]
    info = ev["attack_info"]["identity_linkage"]
    assert info["probes"] > 0.8 * 200 and info["gallery"] >= info["probes"] // 2
    assert ev["attack_info"]["mia_generator"]["calibration_per_side"] == 40


@QUICK_RUN
def test_lora_loads_in_a_plain_diffusers_pipeline(quick_run):
    from diffusers import StableDiffusionPipeline

    _, _, run_dir = quick_run
    pipe = StableDiffusionPipeline.from_pretrained(TINY_DIR, safety_checker=None, requires_safety_checker=False,
                                                   local_files_only=True)
    before = {n: p.clone() for n, p in pipe.unet.named_parameters() if "proj_out" in n}
    pipe.load_lora_weights(str(run_dir))
    pipe.fuse_lora(lora_scale=1.0)
    pipe.unload_lora_weights()
    changed = [n for n, p in pipe.unet.named_parameters() if n in before and not torch.equal(before[n], p)]
    assert len(changed) == 7  # the fused LoRA changed every proj_out weight


@QUICK_RUN
def test_rerun_reuses_stages_and_resumes_after_a_kill(quick_run):
    out, result, _ = quick_run
    train = next(p for p in (out / ".cache").glob("train-*") if p.is_dir() and not p.name.endswith(".partial"))
    shutil.move(train, train.with_name(train.name + ".partial"))  # a killed run leaves a partial stage
    (train.with_name(train.name + ".partial") / "DONE").unlink()
    again, _ = run_benchmark("ce_mask", "A", profile="quick", out=out, **QUIET)
    a, b = again["evaluations"][0]["metrics"], result["evaluations"][0]["metrics"]
    assert a == b  # same command, same seed: the same numbers, to the last digit
    assert again["stage_seconds"]["attack_cls"] < 5 and again["stage_seconds"]["train"] > 1


@QUICK_RUN
def test_other_regime_and_setup_reuse_the_trained_generator(quick_run):
    """V+G on A and G on B train nothing new and ask the generator's MIA nothing new: the LoRA and its
    membership answer depend on the training data (a's Tr and Test), not on which images a cell releases."""
    out, result, _ = quick_run

    def mia(r):
        return {k: v for k, v in r["evaluations"][0]["metrics"].items() if k.startswith("privacy_mia_")}
    def cached():
        return len([p for p in (out / ".cache").glob("mia_generator-*") if not p.name.endswith(".partial")])
    assert mia(result)
    before = cached()
    for setup, regime, evaluated in (("A", "V+G", "synthfaces-a"), ("B", "G", "synthfaces-b")):
        r, _ = run_benchmark("ce_mask", setup, regime=regime, profile="quick", out=out, attacks=["mia_generator"],
                             **QUIET)
        assert r["evaluations"][0]["dataset"] == evaluated and r["regime"] == regime
        assert r["stage_seconds"]["train"] < 2 and r["stage_seconds"]["attack_mia_generator"] < 2
        assert mia(r) == mia(result)
    assert cached() == before >= 1


@QUICK_RUN
def test_execution_options_are_recorded_and_not_part_of_the_key(quick_run):
    """Same folder, same cached stages (so no retraining here: test_methods checks that gradient
    checkpointing trains the same LoRA), the option recorded."""
    out, result, run_dir = quick_run
    again, again_dir = run_benchmark("ce_mask", "A", profile="quick", out=out,
                                     execution=Execution(gradient_checkpointing=True), **QUIET)
    assert again_dir == run_dir and again["config_hash"] == result["config_hash"]  # same cells, same stages
    assert again["hardware"]["gradient_checkpointing"] is True and "gradient_checkpointing" not in result["hardware"]
    assert again["evaluations"][0]["metrics"] == result["evaluations"][0]["metrics"]


@QUICK_RUN
def test_baseline_real_is_shared_baseline_has_no_pt_and_the_board_keeps_them_apart(quick_run):
    """A second method in the module's out folder shares Baseline (Real), has no PT and makes its own release;
    the board keeps it apart. It asks only the attacks checked here (linkage, membership and inversion ran on
    the module's run), so its key differs in the attack suite alone."""
    out, first, _ = quick_run
    r, _ = run_benchmark("baseline", "A", profile="quick", out=out, attacks=["cls", "pt", "probe", "quality"],
                         **QUIET)
    assert r["evaluations"][0]["metrics"]["privacy_pt_race"]["value"] is None  # n/a: no adversary
    assert r["evaluations"][0]["reference"]["baseline_real"] == first["evaluations"][0]["reference"]["baseline_real"]
    # comparable with the module's run but for the attack suite, which the key holds (same versions), and which
    # the config records (eval.attacks: the run folder differs too)
    assert {k: v for k, v in key_components(r).items() if k not in ("attacks", "eval")} == {
        k: v for k, v in key_components(first).items() if k not in ("attacks", "eval")}
    assert r["config"]["eval"] == {**first["config"]["eval"], "attacks": ["cls", "pt", "probe", "quality"]}
    assert r["attacks"].items() < first["attacks"].items()
    assert r["comparability_key"] != first["comparability_key"]
    # each method's LoRA makes its own release (a key collision once made every method release the same images)
    inputs = [json.loads((p / "inputs.json").read_text()) for p in (out / ".cache").glob("release-*")
              if not p.name.endswith(".partial")]
    assert len([i for i in inputs if i["split"] == "gen" and i["dataset"] == "synthfaces-a"]) == 2
    assert r["evaluations"][0]["metrics"]["kid_synthface"] != first["evaluations"][0]["metrics"]["kid_synthface"]
    # the board: both runs under one heading, each in its own group (the attack suites differ)
    from click.testing import CliRunner

    from decobench.cli.main import cli

    res = CliRunner().invoke(cli, ["leaderboard", "--runs", str(out), "--seeds", "0"])
    assert res.exit_code == 0, res.output
    assert "Data track, setup A, regime G, synthfaces-a: sensitive race, profile quick" in res.output
    assert "| Baseline (Real) | | 0 |" in res.output and "| ce_mask | " in res.output and "| baseline | " in res.output
    assert "(differs in attacks, eval)" in res.output  # one of the two groups carries the note (a tie: either)
    res = CliRunner().invoke(cli, ["leaderboard", "--runs", str(out)])  # seeds 0, 1, 2 declared, one run
    assert "ce_mask: seed(s) 1, 2 of 0, 1, 2 not run" in res.output


def test_schema_reports_every_problem():
    with pytest.raises(ResultValidationError) as exc:
        validate({"schema_version": 2, "method": 3})
    assert "method" in str(exc.value) and "setup" in str(exc.value)


@QUICK_RUN
def test_leaderboard_keeps_hyperparameters_and_dp_budgets_apart(quick_run):
    """An ε sweep (or any hyperparameter sweep) is never averaged into one row; a DP row names its budget
    and says when the released part is not private."""
    import copy

    from decobench.results.leaderboard import render

    _, result, _ = quick_run
    rows = []
    for eps, seed in ((1.0, 0), (1.0, 1), (5.0, 0)):
        r = copy.deepcopy(result)
        r["method"], r["seed"] = "ce_dp", seed
        r["method_params"] = {**r["method_params"], "target_epsilon": eps}
        r["dp"] = {"epsilon": eps - 0.01, "delta": 1e-5, "private_players": ["adversary", "generator"]}
        rows.append(r)
    mtl = copy.deepcopy(rows[0])
    mtl["method"], mtl["dp"]["private_players"] = "mtl", ["adversary"]
    table = render(rows + [mtl], seeds=[0])
    assert "| ce_dp [target_epsilon=1.0] (ε 0.99, δ 1e-05) | " in table
    assert "| ce_dp [target_epsilon=5.0] (ε 4.99, δ 1e-05) | " in table
    assert "| mtl (ε 0.99, δ 1e-05; release not private) | " in table
    assert "ce_dp [target_epsilon=5.0] (ε 4.99, δ 1e-05): seed(s) 1 of 0, 1 not run" in render(rows, seeds=[0, 1])


SMALL = QUICK_OVERRIDES  # a few steps and images: the run goes through every stage in seconds


@pytest.mark.parametrize("setup,evaluated", [("B", ["synthfaces-b"]), ("C", ["synthfaces-a", "synthfaces-b"])])
def test_setups_b_and_c(tmp_path, setup, evaluated):
    r, run_dir = run_benchmark("metric", setup, profile="quick", out=tmp_path, overrides=SMALL, attacks=["cls"],
                               **QUIET)
    assert [e["dataset"] for e in r["evaluations"]] == evaluated
    assert r["datasets"]["train"] == (["synthfaces-a", "synthfaces-b"] if setup == "C" else ["synthfaces-a"])
    assert r["config"]["train"]["max_steps"] == 6 and (run_dir / "result.json").is_file()


def test_sensitive_gender_swaps_privacy_and_utility(tmp_path):
    r, _ = run_benchmark("ce", "A", profile="quick", out=tmp_path, overrides=SMALL, sensitive="gender",
                         attacks=["cls", "pt"], **QUIET)
    m = r["evaluations"][0]["metrics"]
    assert {"privacy_cls_gender", "utility_cls_race", "utility_cls_age", "privacy_pt_gender"} <= set(m)
    assert m["privacy_pt_gender"]["chance"] == 0.5
