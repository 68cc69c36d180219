import subprocess
import sys
import textwrap

import pytest

from decobench.registry import (DuplicateNameError, PluginImportError, Registry, UnknownNameError, datasets,
                                methods, setups)


def test_decorator_registration_and_summary():
    reg = Registry("widgets", "decobench.test-widgets")

    @reg.register("alpha")
    class Alpha:
        """First widget.

        More text."""

    e = reg.entry("alpha")
    assert e.obj is Alpha and e.summary == "First widget." and e.origin.startswith("built-in (")
    assert reg.names() == ["alpha"]


def test_duplicate_name_is_an_error():
    reg = Registry("widgets", "decobench.test-widgets")
    reg.add("alpha", object)
    with pytest.raises(DuplicateNameError, match="already registered"):
        reg.add("alpha", int)


def test_unknown_name_lists_close_ones():
    with pytest.raises(UnknownNameError) as exc:
        datasets.get("synthface-a")
    msg = str(exc.value)
    assert "synthfaces-a" in msg and "did you mean" in msg


def test_type_check_rejects_bad_plugin():
    reg = Registry("widgets", "decobench.test-widgets", check=lambda o: None if callable(o) else "not callable")
    with pytest.raises(Exception, match="not callable"):
        reg.add("x", 3)


def test_builtins_are_registered():
    assert {"synthfaces-a", "synthfaces-b", "fairface", "utkface", "celeba"} <= set(datasets.names())
    assert setups.names() == ["A", "B", "C"]
    assert isinstance(methods.names(), list)


def _write_dist(site, dist, version, group, entries, module_src):
    """A minimal installed distribution: a module plus a .dist-info with entry points."""
    (site / f"{dist}.py").write_text(textwrap.dedent(module_src))
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "\n".join(entries) + "\n")


PLUGIN_SRC = '''
import numpy as np, pandas as pd
from decobench.data.base import FaceDataset

class TinyFaces(FaceDataset):
    """Third-party test dataset: eight grey squares."""
    name = "tiny-plugin"
    strat_columns = ("race_orig",)
    def __init__(self, root=None):
        super().__init__()
        self.records = pd.DataFrame({"image_id": [f"t{i}" for i in range(8)], "identity": -1,
                                     "race_orig": ["White", "Black"] * 4, "race": [0, 1] * 4,
                                     "gender": 0, "age": 3})
    def load_images(self, ids, size=64):
        return np.full((len(ids), size, size, 3), 128, np.uint8)
'''


def test_third_party_plugin_is_listed_and_usable(tmp_path, monkeypatch):
    _write_dist(tmp_path, "decobench_tinyplugin", "1.2.3", "decobench.datasets",
                ["tiny-plugin = decobench_tinyplugin:TinyFaces"], PLUGIN_SRC)
    env = {"PYTHONPATH": str(tmp_path)}
    import os
    full_env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-m", "decobench.cli.main", "list", "datasets"],
                         capture_output=True, text=True, env=full_env, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("tiny-plugin"))
    assert "decobench_tinyplugin==1.2.3" in line and "eight grey squares" in line
    out = subprocess.run([sys.executable, "-m", "decobench.cli.main", "data", "summary", "--dataset", "tiny-plugin",
                          "--json"], capture_output=True, text=True, env=full_env, check=True).stdout
    assert '"images": 8' in out and '"White": 4' in out


def test_plugin_that_fails_to_import_is_named(tmp_path, monkeypatch):
    _write_dist(tmp_path, "decobench_brokenplugin", "0.1", "decobench.test-broken",
                ["broken = decobench_brokenplugin:Thing"], "import not_a_real_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("methods", "decobench.test-broken")
    with pytest.raises(PluginImportError) as exc:
        reg.names()
    msg = str(exc.value)
    assert "'broken'" in msg and "decobench_brokenplugin==0.1" in msg and "not_a_real_module_xyz" in msg
