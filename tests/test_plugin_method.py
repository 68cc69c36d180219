"""The README's two method-plugin examples, installed as third-party entry points, pass `decobench check`
and run through `decobench run`."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from decobench.methods.checks import QUICK_OVERRIDES
from decobench.models.base import TINY_DIR, missing_files

# pytest -n N: this module's tests share a module fixture, so one worker runs them all
pytestmark = pytest.mark.xdist_group("test_plugin_method")

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_block(marker: str) -> str:
    text = README.read_text()
    m = re.search(r"```(?:python|toml)\n" + re.escape(marker) + r"\n(.*?)```", text, re.S)
    assert m, f"README lost the block starting with {marker!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    pkg = site / "my_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "entropy.py").write_text(_readme_block("# my_pkg/entropy.py"))
    (pkg / "utility_head.py").write_text(_readme_block("# my_pkg/utility_head.py"))
    eps = dict(re.findall(r'^(\w+) = "([^"]+)"', _readme_block("# my_pkg/pyproject.toml"), re.M))
    info = site / "my_pkg-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my_pkg\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[decobench.methods]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    env = {**os.environ, "PYTHONPATH": str(site), "TQDM_DISABLE": "1"}
    return env, sorted(eps)


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "decobench.cli.main", *args], env=env, capture_output=True, text=True)


def test_both_examples_are_listed_with_their_package(installed):
    env, names = installed
    assert names == ["max_entropy", "utility_ce"]
    listed = _cli(env, "list", "methods").stdout
    for name in names:
        assert re.search(rf"^{name}\s+\[data\]\s+my_pkg==0.0.1", listed, re.M), listed


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_files(TINY_DIR)), reason="tiny-synthface weights not built")
def test_check_method_passes_the_utility_head_example(installed):
    env, _ = installed
    done = _cli(env, "check", "method", "utility_ce")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "every check passed" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_files(TINY_DIR)), reason="tiny-synthface weights not built")
def test_entropy_example_runs_with_typed_params(installed, tmp_path):
    env, _ = installed
    sets = {**QUICK_OVERRIDES, "method.weight": "0.5"}
    done = _cli(env, "run", "--method", "max_entropy", "--setup", "A", "--profile", "quick", "--device", "cpu",
                "--attacks", "cls,pt", "--out", str(tmp_path),
                *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")])
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(next(tmp_path.glob("A/max_entropy/*/seed0/result.json")).read_text())
    assert result["method_origin"] == "my_pkg==0.0.1" and result["method_params"] == {"weight": 0.5}
    assert result["evaluations"][0]["metrics"]["privacy_pt_race"]["value"] is not None  # it has an adversary
    bad = _cli(env, "run", "--method", "max_entropy", "--setup", "A", "--set", "method.weight=-1")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "method.weight" in bad.stderr
