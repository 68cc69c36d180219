"""benchmarks/bench_sd15_gpu.py cannot rot: its CPU smoke run goes through the same code as the GPU run
(decobench's Trainer and release on an SD-shaped folder, the paper-setting references, FLOP counts)."""

import sys
from pathlib import Path

import pytest

# pytest -n N: this module's tests share a module fixture, so one worker runs them all
pytestmark = [pytest.mark.xdist_group("test_bench_sd15"), pytest.mark.slow]  # the smoke run takes ~40 s

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    sys.path.insert(0, str(BENCH))
    try:
        import bench_sd15_gpu
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path_factory.mktemp("bench") / "sd15.json"
    rec = bench_sd15_gpu.main(["--config", "tiny", "--device", "cpu", "--quick", "--out", str(out)])
    assert out.is_file() and not out.with_suffix(".partial.json").exists()
    return rec


def test_every_measurement_ran(record):
    assert set(record["train"]) == {"decobench", "gradient_checkpointing", "batch_x2", "reference"}
    assert set(record["release"]) == {"decobench", "batch_256", "reference"}
    for stage in ("train", "release"):
        for name, r in record[stage].items():
            assert "error" not in r, (stage, name, r)
            assert r["images_per_s"] > 0 and r["x_paper"] > 0
            assert ("x_reference" in r) == (name != "reference")


def test_reference_settings_are_the_papers(record):
    # the paper's loop also runs the VAE encoder and the text encoder: more FLOPs per training image
    assert record["reference_train_flops_per_image"] > record["train_flops_per_image"] > 0
    assert record["release"]["reference"]["batch"] == 1
    assert record["release"]["decobench"]["num_inference_steps"] == 50
    assert record["release_flops_per_image"] > 0
