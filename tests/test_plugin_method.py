"""The README's method-plugin example, installed as a third-party entry point, runs through `decobench run`."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from decobench.models.base import TINY_DIR, missing_files

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_block(marker: str) -> str:
    text = README.read_text()
    m = re.search(r"```(?:python|toml)\n" + re.escape(marker) + r"\n(.*?)```", text, re.S)
    assert m, f"README lost the block starting with {marker!r}"
    return m.group(1)


@pytest.mark.skipif(bool(missing_files(TINY_DIR)), reason="tiny-synthface weights not built")
def test_readme_plugin_example_runs(tmp_path):
    pkg = tmp_path / "site" / "my_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "entropy.py").write_text(_readme_block("# my_pkg/entropy.py"))
    ep = _readme_block("# my_pkg/pyproject.toml")
    name, target = re.search(r'^(\w+) = "([^"]+)"', ep, re.M).groups()
    info = tmp_path / "site" / "my_pkg-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my_pkg\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[decobench.methods]\n{name} = {target}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "TQDM_DISABLE": "1"}
    listed = subprocess.run([sys.executable, "-m", "decobench.cli.main", "list", "methods"], env=env,
                            capture_output=True, text=True, check=True).stdout
    assert re.search(rf"^{name}\s+my_pkg==0.0.1", listed, re.M), listed
    small = ["max_steps=6", "eval_every=3", "max_train_images=128", "max_val_images=32",
             "release.max_images_per_split=48", "release.num_inference_steps=4", "eval.max_test_images=64",
             "eval.max_gen_val_images=32", "eval.classifier.max_epochs=1"]
    cmd = [sys.executable, "-m", "decobench.cli.main", "run", "--method", name, "--setup", "A", "--profile", "quick",
           "--device", "cpu", "--out", str(tmp_path / "runs")] + [a for s in small for a in ("--set", s)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "runs" / "A" / name / "seed0" / "result.json").read_text())
    assert result["method_origin"] == "my_pkg==0.0.1"
    assert result["evaluations"][0]["metrics"]["privacy_pt_race"]["value"] is not None  # it has an adversary
