"""``decobench suite``: grids expand and check, shards are disjoint and cover the grid, runs resume, failures
are recorded, and concurrent workers (shards or not) never compute a cell twice."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from decobench.cli.main import main
from decobench.registry import methods
from decobench.run.config import ConfigError
from decobench.suite.grid import PRESETS, expand, load_grid, parse_shard, shard
from decobench.suite.run import cell_dir, run_suite, status

REPO = Path(__file__).resolve().parents[1]


def fake_runner(calls: list | None = None, fail: set = frozenset()):
    """Writes the cell's result.json where ``decobench run`` would (no training); fails for the cells named."""
    def run(cell, out, kwargs, log):
        if calls is not None:
            calls.append(cell.id)
        if cell.id in fail:
            raise ValueError("planted failure")
        d = cell_dir(cell, out, kwargs)
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps({"stage_seconds": {"total": 2.0}}))
    return run


def test_the_embedded_preset_is_every_method_on_its_tracks():
    cells = load_grid("embedded")
    data = [m for m in methods.names() if "data" in methods.get(m).tracks]
    model = [m for m in methods.names() if "model" in methods.get(m).tracks]
    assert len(cells) == len(data) * 3 * 2 * 3 + len(model) * 3 + 4 * 3 * 3  # + the cloaks' Table 1
    assert {c.method for c in cells if c.track == "cloak"} == {"fi_uap", "ga_fi_uap", "opom_convex", "ga_opom_convex"}
    assert len({c.id for c in cells}) == len(cells)
    assert {c.method for c in cells if c.track == "model"} == set(model)
    assert {c.regime for c in cells if c.track == "data"} == {"G", "V+G"}


@pytest.mark.parametrize("n", [1, 3, 8])
def test_shards_are_disjoint_and_cover_the_grid(n):
    cells = load_grid("embedded")
    parts = [shard(cells, k, n) for k in range(1, n + 1)]
    ids = [c.id for p in parts for c in p]
    assert sorted(ids) == sorted(c.id for c in cells) and len(set(ids)) == len(ids)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("grid, message", [
    ({"block": [{"track": "data", "methods": ["dplh"]}]}, "runs on the model track"),
    ({"block": [{"track": "data", "regimes": ["X"]}]}, "regime 'X'"),
    ({"block": [{"track": "data", "colour": 1}]}, "unknown key(s) colour"),
    ({"seeds": [0, -1], "block": [{"track": "data"}]}, "non-negative integers"),
    ({"block": []}, "no [[block]] tables"),
    ({"block": [{"track": "video"}]}, "track 'video'"),
    ({"block": [{"track": "cloak", "methods": ["fi_uap"], "sweep": {"method.k": 2}}]}, "sweep must be a table"),
    ({"block": [{"track": "cloak", "methods": ["ce"]}]}, "runs on the data, model track(s), not cloak"),
])
def test_a_bad_grid_is_a_clear_error(grid, message):
    with pytest.raises(ConfigError, match=__import__("re").escape(message)):
        expand(grid)


def test_bad_grid_file_and_shard_exit_2(tmp_path, capsys):
    bad = tmp_path / "grid.toml"
    bad.write_text("block = [ {")
    assert main(["suite", "plan", "--grid", str(bad)]) == 2
    assert main(["suite", "plan", "--grid", str(tmp_path / "missing.toml")]) == 2
    assert main(["suite", "plan", "--preset", "quick", "--shard", "0/2"]) == 2
    assert main(["suite", "plan", "--preset", "nope"]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and "does not exist" in err and "K/N" in err and "unknown preset" in err
    with pytest.raises(ConfigError):
        parse_shard("3")


def test_a_toml_grid_reads_like_the_preset(tmp_path):
    f = tmp_path / "grid.toml"
    f.write_text(textwrap.dedent("""
        seeds = [0, 1, 2]
        profile = "quick"
        [[block]]
        track = "data"
        methods = ["baseline", "ce"]
        setups = ["A"]
        regimes = ["G"]
        [[block]]
        track = "model"
        methods = "baseline"
        seeds = 0
        set = { "eval.mia_references" = 2 }
    """))
    cells = load_grid(path=f)
    assert [c.id for c in cells if c.track == "data"] == [c.id for c in load_grid("quick")]
    (m,) = [c for c in cells if c.track == "model"]
    assert m.sets == (("eval.mia_references", "2"),) and m.seed == 0
    assert "--set eval.mia_references=2" in m.command()


def test_plan_finds_the_committed_results():
    """The suite locates a cell's result where ``decobench run`` wrote it: every committed result is a done cell
    of the embedded preset."""
    committed = {p.parent for p in (REPO / "leaderboard" / "results").rglob("result.json")}
    done = {cell_dir(c, REPO / "leaderboard" / "results") for c in load_grid("embedded")}
    assert committed and committed <= done


def test_the_suite_resumes_and_records_failures(tmp_path, capsys):
    cells = load_grid("quick")
    calls = []
    out = run_suite(cells, tmp_path, runner=fake_runner(calls, fail={cells[1].id}), progress=False)
    assert out.ran == [c.id for c in cells if c.id != cells[1].id] and list(out.failed) == [cells[1].id]
    assert status(cells[1], tmp_path) == "failed"
    record = json.loads((tmp_path / ".suite" / "failed" / f"{cells[1].id}.json").read_text())
    assert "planted failure" in record["error"] and record["command"].startswith("decobench run")
    assert "planted failure" in (tmp_path / ".suite" / "logs" / f"{cells[1].id}.log").read_text()
    calls.clear()
    again = run_suite(cells, tmp_path, runner=fake_runner(calls), progress=False)
    assert calls == [cells[1].id] and again.failed == {}  # only the failed cell runs again
    assert status(cells[1], tmp_path) == "done"
    assert run_suite(cells, tmp_path, runner=fake_runner(calls), progress=False).ran == []


def test_a_cell_with_its_own_attack_suite_has_its_own_folder(tmp_path):
    """--attacks is written into the config (eval.attacks), so a grid's Tr+V+G cells without PT never find a
    default run's result.json, nor overwrite it; the default suite hashes as before."""
    from dataclasses import replace

    from decobench.run.config import resolve
    from decobench.run.identity import with_attacks

    cell = next(c for c in load_grid("trvg") if c.method == "ce" and c.setup == "A")
    assert cell.attacks and "pt" not in cell.attacks
    assert cell_dir(cell, tmp_path) != cell_dir(replace(cell, attacks=None), tmp_path)
    cfg, _ = resolve("embedded", methods.get("ce"), "ce")
    assert with_attacks(cfg, "data", None) is cfg and with_attacks(cfg, "data", list(cfg.eval.attacks)).hash() == cfg.hash()
    assert with_attacks(cfg, "model", ["probe"]).eval.model_attacks == ("probe",)


def test_the_eta_reads_finished_cells_seconds(tmp_path):
    from decobench.suite.run import _seconds_of

    cells = load_grid("quick")
    run_suite(cells[:1], tmp_path, runner=fake_runner(), progress=False)
    assert _seconds_of(cells[0], tmp_path) == 2.0 and _seconds_of(cells[1], tmp_path) is None
    committed = next(c for c in load_grid("embedded") if c.track == "data" and c.method == "baseline")
    assert _seconds_of(committed, REPO / "leaderboard" / "results") > 0  # the key real results carry


def test_a_cell_another_worker_failed_meanwhile_is_not_run_again(tmp_path):
    """This worker finds a cell locked, runs the others, waits; the other worker's attempt fails: the failure
    stands for this invocation (a later one retries it)."""
    import threading
    import time

    from decobench.suite.run import claim

    cells = load_grid("quick")
    calls, result = [], {}
    with claim(cells[0], tmp_path, wait=True):
        t = threading.Thread(target=lambda: result.update(out=run_suite(cells, tmp_path, runner=fake_runner(calls),
                                                                        progress=False)))
        t.start()
        deadline = time.time() + 60
        while len(calls) < len(cells) - 1 and time.time() < deadline:
            time.sleep(0.05)
        failed = tmp_path / ".suite" / "failed" / f"{cells[0].id}.json"
        failed.write_text(json.dumps({"error": "ValueError: the other worker's failure"}))
    t.join(timeout=60)
    assert cells[0].id not in calls and sorted(calls) == sorted(c.id for c in cells[1:])
    assert result["out"].failed == {cells[0].id: "ValueError: the other worker's failure"}


def test_no_wait_leaves_a_cell_another_worker_holds_and_returns(tmp_path):
    """--no-wait: the free cells run, the locked one is left to its worker (reported, not run, not failed), and
    the call returns while that worker still holds it; without it the same call would block on the lock."""
    from decobench.suite.run import claim

    cells = load_grid("quick")
    calls = []
    with claim(cells[0], tmp_path, wait=True):
        out = run_suite(cells, tmp_path, runner=fake_runner(calls), progress=False, wait=False)
        assert out.left == [cells[0].id] and not out.failed and sorted(out.ran) == sorted(c.id for c in cells[1:])
        assert cells[0].id not in calls and status(cells[0], tmp_path) == "todo"
    out = run_suite(cells, tmp_path, runner=fake_runner(calls), progress=False, wait=False)  # freed: it runs
    assert out.ran == [cells[0].id] and not out.left


def test_time_limit_starts_no_cell_the_finished_ones_say_would_not_end_in_time(tmp_path, capsys):
    """--time-limit: with cells of the kind timed at 2 s, 1 s left starts none (reported, not failed); 1000 s
    runs them all. A bad duration is one error line and exit 2."""
    cells = load_grid("quick")
    calls = []
    run_suite(cells[:1], tmp_path, runner=fake_runner(calls), progress=False)  # its result says 2.0 s
    out = run_suite(cells, tmp_path, runner=fake_runner(calls), progress=False, time_limit=1.0)
    assert out.not_started == [c.id for c in cells[1:]] and not out.ran and not out.failed and len(calls) == 1
    out = run_suite(cells, tmp_path, runner=fake_runner(calls), progress=False, time_limit=1000.0)
    assert sorted(out.ran) == sorted(c.id for c in cells[1:]) and not out.not_started
    assert main(["suite", "run", "--preset", "quick", "--out", str(tmp_path), "--time-limit", "2h30"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--time-limit '2h30' is not a duration" in err


def test_the_estimate_times_a_cell_by_its_setup_and_regime_before_its_method():
    """A setup-C cell trains on and scores two worlds: its estimate comes from C cells, not from A's; a
    method not yet timed on C takes the other methods' C time, not its own (cheaper) A and B times."""
    from decobench.suite.run import Estimate

    grid = [c for c in load_grid("embedded") if c.track == "data" and c.regime == "G"]
    cells = [c for c in grid if c.method == "baseline"]
    a, c = next(x for x in cells if x.setup == "A"), next(x for x in cells if x.setup == "C")
    b = next(x for x in cells if x.setup == "B")
    est = Estimate()
    est.add(a, 1000.0)
    est.add(c, 2000.0)
    assert est.of(c) == 2000.0 and est.of(a) == 1000.0 and est.of(b) == 1500.0  # B untimed: the method's mean
    other = [x for x in grid if x.method == "ce_mask"]
    est.add(next(x for x in other if x.setup == "A"), 600.0)
    assert est.of(next(x for x in other if x.setup == "C")) == 2000.0  # C's time, not ce_mask's 600 on A


WORKER = """
import json, sys, time
from pathlib import Path
from decobench.suite.grid import load_grid, parse_shard, shard
from decobench.suite.run import cell_dir, run_suite

out, shard_arg = Path(sys.argv[1]), sys.argv[2]
def run(cell, out, kwargs, log):
    with open(out / "calls.txt", "a") as f:
        f.write(cell.id + "\\n")
    time.sleep(0.3)
    d = cell_dir(cell, out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "result.json").write_text(json.dumps({"stage_seconds": {"total": 0.3}}))
cells = load_grid("quick")
k, n = parse_shard(shard_arg)
run_suite(shard(cells, k, n), out, runner=run, progress=False, echo=lambda *a: None)
"""


@pytest.mark.parametrize("shards", [["1/1", "1/1", "1/1"], ["1/2", "2/2"]])
def test_concurrent_workers_compute_each_cell_once(tmp_path, shards):
    """Three plain workers on one grid, or two shards: every cell runs exactly once, and all are done."""
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), s], cwd=REPO) for s in shards]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    calls = (tmp_path / "calls.txt").read_text().split()
    cells = load_grid("quick")
    assert sorted(calls) == sorted(c.id for c in cells)
    assert all(status(c, tmp_path) == "done" for c in cells)


def test_suite_run_cli_writes_the_board_only_when_the_grid_is_done(tmp_path, monkeypatch):
    import decobench.suite.run as suite_run

    monkeypatch.setattr(suite_run, "run_cell", fake_runner(fail={load_grid("quick")[0].id}))
    assert main(["suite", "run", "--preset", "quick", "--out", str(tmp_path), "--board", str(tmp_path / "b")]) == 1
    assert not (tmp_path / "b").exists()


def test_presets_are_valid_grids():
    for name in PRESETS:
        assert load_grid(name)


def test_a_finished_grid_writes_the_board(tmp_path):
    """Over the committed results (the data-track A/G cells are all done), the suite runs nothing and writes
    the board: the same tables as the committed one."""
    import shutil

    shutil.copytree(REPO / "leaderboard" / "results", tmp_path / "runs")
    grid = tmp_path / "grid.toml"
    grid.write_text('[[block]]\ntrack = "data"\nmethods = ["baseline", "ce", "ce_dp", "ce_mask", "metric"]\n')
    assert main(["suite", "run", "--grid", str(grid), "--out", str(tmp_path / "runs"), "--device", "cpu",
                 "--board", str(tmp_path / "board")]) == 0  # cpu: the committed results' folders, on any machine
    board = tmp_path / "board"
    def tables(p):  # the first line names the generating commit; the committed board ends with the embedded
        return p.read_text().split("\n", 1)[1].split("### Not in this board yet")[0].strip()  # grid's cells to come
    assert tables(board / "grid.md") == tables(REPO / "leaderboard" / "embedded.md")
    import pandas as pd

    def cells(p):  # every record names the generating checkout, which is this one, not the committed board's
        return pd.read_csv(p).drop(columns=["generator_commit"])
    pd.testing.assert_frame_equal(cells(board / "grid.csv"), cells(REPO / "leaderboard" / "embedded.csv"))
    assert (board / "index.html").is_file()


def test_the_cloak_table_grid_sweeps_surrogates_and_finds_its_folders(tmp_path):
    cells = load_grid(path=REPO / "leaderboard" / "grids" / "cloaks-100.toml")
    assert len(cells) == 4 * 3 * 3 and {c.setup for c in cells} == {"PC"}
    assert {dict(c.sets)["method.surrogate"] for c in cells} == {"resnet-arcface", "resnet-cosface", "resnet-softmax"}
    assert "--setup" not in cells[0].command()
    assert len({cell_dir(c, tmp_path) for c in cells}) == len(cells)
    assert len(load_grid("cloaks")) == 36


def test_a_board_made_from_a_grid_lists_the_cells_it_lacks_and_why(tmp_path):
    """Two cells done, one failed, the rest never run: the board's last section names each with its seeds and
    state (a setup with no result at all has no group to carry that)."""
    from decobench.results.expected import declared_seeds, missing, render_missing

    cells = load_grid("quick")  # baseline and ce on A/G, seeds 0-2
    done = [c for c in cells if c.method == "baseline"][:2]
    bad = next(c for c in cells if c.method == "ce" and c.seed == 1)
    run_suite(done + [bad], tmp_path, runner=fake_runner(fail={bad.id}), progress=False)
    rows = missing(cells, tmp_path)
    assert [(r["method"], r["seeds"], r["state"]) for r in rows] == [
        ("baseline", [2], "not run"), ("ce", [1], "failed: ValueError: planted failure"), ("ce", [0, 2], "not run")]
    text = render_missing(cells, rows, "quick")
    assert "4 of the 6 cells of grid quick are not in this board as the code at hand makes them: 3 not run, 1 failed, 0 stale;" in text
    assert "| data | A | G | ce | 1 | failed: ValueError: planted failure |" in text
    assert declared_seeds(cells) == {("data", "baseline"): [0, 1, 2], ("data", "ce"): [0, 1, 2]}
    run_suite(cells, tmp_path, runner=fake_runner(), progress=False)
    assert missing(cells, tmp_path) == [] and render_missing(cells, [], "quick") == ""


def test_the_leaderboard_command_closes_with_the_grids_missing_cells(tmp_path):
    import shutil

    shutil.copytree(REPO / "leaderboard" / "results" / "A" / "baseline", tmp_path / "runs" / "A" / "baseline")
    md = tmp_path / "board.md"
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--preset", "quick", "--out", str(md)]) == 0
    assert "| data | A | G | ce | 0, 1, 2 | not run |" in md.read_text()
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--preset", "nope"]) == 2


def test_a_result_made_by_other_code_is_stale_and_runs_again(tmp_path):
    """A finished cell whose method_version or attack version is not the code at hand's is not done: plan says
    stale, the suite reruns it, the board's missing section says why."""
    import shutil

    from decobench.results.expected import missing
    from decobench.suite.run import stale

    cell = next(c for c in load_grid("embedded") if c.track == "data" and c.method == "baseline" and c.regime == "G")
    src = cell_dir(cell, REPO / "leaderboard" / "results") / "result.json"
    dst = cell_dir(cell, tmp_path) / "result.json"
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    assert status(cell, tmp_path) == "done" and stale(dst) is None
    r = json.loads(dst.read_text())
    r["hardware"]["device"] = "cuda:0"  # made on a GPU before folders had the where-tag: not this CPU cell's result
    dst.write_text(json.dumps(r))
    assert status(cell, tmp_path) == "stale" and "made on cuda" in stale(dst, {"device": "cpu"})
    assert stale(dst) is None  # the board's missing cells take a result from any device
    r["hardware"]["device"] = "cpu"
    r["method_version"] = "0:0000000000000000"
    dst.write_text(json.dumps(r))
    assert status(cell, tmp_path) == "stale" and "made by other method code" in stale(dst)
    (row,) = [m for m in missing([cell], tmp_path)]
    assert row["state"].startswith("stale: made by other method code")
    r = json.loads(src.read_text())
    r["attacks"]["cls"]["version"] = "0"
    dst.write_text(json.dumps(r))
    assert "attack(s) cls" in stale(dst)
    r["method"] = "not_a_registered_method"  # a plugin not installed here: stale with the reason, no crash
    dst.write_text(json.dumps(r))
    assert "not registered" in stale(dst)
    dst.write_text("[1, 2]")
    assert "not a JSON object" in stale(dst)
    calls = []
    run_suite([cell], tmp_path, runner=fake_runner(calls), progress=False)
    assert calls == [cell.id]


def test_cloak_cells_with_their_own_attacks_or_device_have_their_own_folder(tmp_path):
    from dataclasses import replace

    cell = next(c for c in load_grid("cloaks"))
    base = cell_dir(cell, tmp_path)
    assert cell_dir(replace(cell, attacks=("fr_protection",)), tmp_path) == base  # the default suite
    assert cell_dir(cell, tmp_path, {"device": "cuda"}) != base
    assert cell_dir(cell, tmp_path, {"device": "cpu", "data_root": "/data"}) != base
