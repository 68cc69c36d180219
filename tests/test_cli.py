import json
import subprocess

import pytest
from click.testing import CliRunner
from PIL import Image

from decobench.cli.main import cli, main

COMMANDS = [[], ["list"], ["data"], ["data", "summary"], ["data", "preview"], ["splits"], ["splits", "build"],
            ["splits", "verify"], ["splits", "show"], ["run"], ["check", "method"], ["check", "attack"],
            ["attacks", "calibrate"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_everywhere(cmd):
    res = CliRunner().invoke(cli, cmd + ["--help"])
    assert res.exit_code == 0 and "Usage:" in res.output
    if cmd and cmd[-1] in ("summary", "preview", "build", "verify", "show", "list", "run", "method", "attack",
                           "calibrate"):
        assert "Example" in res.output


@pytest.mark.parametrize("kind", ["methods", "attacks", "datasets", "setups"])
def test_list(kind):
    res = CliRunner().invoke(cli, ["list", kind])
    assert res.exit_code == 0 and res.output.strip()


def test_summary_json_on_fixture(fairface_root):
    res = CliRunner().invoke(cli, ["data", "summary", "--dataset", "fairface", "--root", str(fairface_root), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["images"] == 211 and sum(info["label_counts"]["race"].values()) == 211
    assert set(info["label_counts"]["race"]) == {"White", "Black", "Asian", "Indian", "Others"}
    assert info["excluded_or_bad"] == 2


def test_preview_writes_png(tmp_path):
    out = tmp_path / "p.png"
    res = CliRunner().invoke(cli, ["data", "preview", "--dataset", "synthfaces-b", "--out", str(out), "--n", "6",
                                   "--columns", "3", "--tile", "64"])
    assert res.exit_code == 0, res.output
    im = Image.open(out)
    assert im.size[0] == 3 * 64 and im.size[1] > 2 * 64


def test_user_errors_exit_2_with_a_clear_line(capsys, tmp_path):
    assert main(["data", "summary", "--dataset", "fairfac"]) == 2
    assert "did you mean fairface" in capsys.readouterr().err
    assert main(["data", "summary", "--dataset", "utkface", "--root", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_splits_verify_and_show():
    res = CliRunner().invoke(cli, ["splits", "verify", "--dataset", "synthfaces-a"])
    assert res.exit_code == 0 and res.output.startswith("OK")
    res = CliRunner().invoke(cli, ["splits", "show", "--dataset", "synthfaces-b"])
    assert res.exit_code == 0 and "G-val" in res.output


def test_console_script_installed():
    out = subprocess.run(["decobench", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "decobench" in out.stdout


def test_check_method_lists_every_problem(capsys):
    from decobench.registry import methods
    from tests.test_methods import _BareParameter

    methods.add("bare_param_test", _BareParameter)
    try:
        assert main(["check", "method", "bare_param_test", "--no-run"]) == 1
        err = capsys.readouterr().err
        assert "'scale'" in err and "1 problem(s)" in err
    finally:
        methods.unregister("bare_param_test")


def test_attacks_calibrate_command(capsys):
    assert main(["attacks", "calibrate", "probe", "pt"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 and "FAIL" not in out


def test_sweep_runs_every_combination_and_refuses_a_key_both_set_and_swept():
    from decobench.cli.run_cmd import sweep_grid
    from decobench.run.config import ConfigError

    grid = sweep_grid(["method.lambda2=0,1,10", "seedless=a,b"], {"method.mu2": "1"})
    assert len(grid) == 6 and grid[0] == {"method.mu2": "1", "method.lambda2": "0", "seedless": "a"}
    assert [g["method.lambda2"] for g in grid[::2]] == ["0", "1", "10"]
    assert sweep_grid([], {"lr": "1"}) == [{"lr": "1"}]
    with pytest.raises(ConfigError, match="both --set and --sweep"):
        sweep_grid(["lr=1,2"], {"lr": "3"})
    with pytest.raises(ConfigError, match="no values"):
        sweep_grid(["method.lambda2="], {})
    with pytest.raises(ConfigError, match="given twice"):
        sweep_grid(["method.lambda2=1", "method.lambda2=2"], {})
    with pytest.raises(ConfigError, match="--sweep expects KEY=VALUE"):
        sweep_grid(["lambda2"], {})


def test_a_bad_sweep_value_fails_before_anything_runs(tmp_path, capsys):
    assert main(["run", "--method", "adv_recon", "--setup", "A", "--track", "model", "--out", str(tmp_path),
                 "--sweep", "method.lambda2=0,-1"]) == 2
    assert "lambda2" in capsys.readouterr().err and not any(tmp_path.iterdir())
    assert main(["run", "--method", "adv_recon", "--setup", "A", "--track", "model", "--out", str(tmp_path),
                 "--set", "lr=1e-4"]) == 2
    assert "model.lr" in capsys.readouterr().err
