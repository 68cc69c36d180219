"""One data-track run on two processes (torchrun; accelerate's process group, gloo on CPU) trains the LoRA
and releases the images one process does: the batch is drawn whole on every process, each takes its rows,
and each parameter's gradient is summed across processes weighted by their share."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from decobench.models.base import TINY_DIR, missing_files
from decobench.run.config import ConfigError
from decobench.run.distributed import Processes

pytestmark = pytest.mark.skipif(bool(missing_files(TINY_DIR)), reason="tiny-synthface weights not built")
SETS = ["max_steps=6", "eval_every=3", "select_after=0", "max_train_images=128", "max_val_images=32",
        "release.max_images_per_split=48", "release.num_inference_steps=4", "eval.max_test_images=64",
        "eval.max_gen_val_images=32"]
ARGS = ["-m", "decobench.cli.main", "run", "--method", "ce", "--setup", "A", "--profile", "quick", "--device", "cpu",
        "--attacks", "pt,probe", *[a for s in SETS for a in ("--set", s)]]


def _run(prefix: list[str], out) -> tuple[dict, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    p = subprocess.run([*prefix, *ARGS, "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (result_file,) = out.glob("A/ce/*/seed0/result.json")
    lora = load_file(str(result_file.parent / "pytorch_lora_weights.safetensors"))
    return json.loads(result_file.read_text()), lora


def _released(out) -> np.ndarray:
    from decobench.run.release import load_released

    (folder,) = [f for f in (out / ".cache").glob("release-*") if (f / "DONE").is_file()]
    return load_released(folder)[0]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun (ships with torch) is not on PATH")
def test_two_processes_train_and_release_what_one_process_does(tmp_path):
    one, lora1 = _run([sys.executable], tmp_path / "one")
    two, lora2 = _run(["torchrun", "--standalone", "--nproc_per_node", "2"], tmp_path / "two")
    assert two["hardware"]["processes"] == 2 and "processes" not in one["hardware"]
    assert two["comparability_key"] == one["comparability_key"]  # how it ran is not what it computed
    assert lora1.keys() == lora2.keys()
    assert one["training"]["steps"] == two["training"]["steps"] == 6
    diff = max((lora1[k] - lora2[k]).abs().max().item() for k in lora1)
    assert diff < 1e-5, diff  # measured 3e-8: float summation order
    h1, h2 = one["training"]["history"], two["training"]["history"]
    assert one["training"]["selected_step"] == two["training"]["selected_step"] and len(h1) == len(h2)
    for a, b in zip(h1, h2):  # V metrics and the logged training losses (the whole batch's means)
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    r1, r2 = _released(tmp_path / "one"), _released(tmp_path / "two")
    assert r1.shape == r2.shape and np.abs(r1.astype(int) - r2.astype(int)).max() <= 1
    assert (r1 == r2).mean() > 0.99


def test_rows_split_every_batch_once():
    p = Processes()
    for world in (2, 3):
        for n in (1, 7, 64):
            p.world, got = world, []
            for p.rank in range(world):
                got += list(range(n))[p.rows(n)]
            assert got == list(range(n))
    p.world, p.rank = 2, 1
    batch = {"x": torch.arange(5), "labels": {"race": torch.arange(5) * 2}, "text": torch.zeros(3)}
    part = p.take(batch, 5)
    assert part["x"].tolist() == [3, 4] and part["labels"]["race"].tolist() == [6, 8] and len(part["text"]) == 3


def test_dp_training_refuses_several_processes():
    p = Processes()
    p.refuse_dp("CEDP")  # one process: nothing to refuse
    p.world = 2
    with pytest.raises(ConfigError, match="DP-SGD.*one process"):
        p.refuse_dp("CEDP")
