"""The leaderboard's aggregation: cells over declared seeds with Student-t CIs, rows kept aside when a seed is
missing, incomparable results in their own group with the reason, CI-aware Pareto tiers, a tidy table."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from decobench.results.aggregate import groups, seed_interval, tidy
from decobench.results.build import comparability_key
from decobench.results.leaderboard import render
from decobench.results.pareto import tiers

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = sorted(ROOT.glob("leaderboard/results/A/baseline/G-*/seed0/result.json"))[0]  # a data-track result


def _result(method: str, seed: int, cls: float, age: float, gender: float = 0.7, **params) -> dict:
    r = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    r["method"], r["seed"], r["method_params"] = method, seed, params
    m = r["evaluations"][0]["metrics"]
    for k, v in (("privacy_cls_race", cls), ("utility_cls_age", age), ("utility_cls_gender", gender)):
        m[k] = {**m[k], "value": v, "ci": [v - 0.02, v + 0.02]}
    return r


def _group(results, **kw):
    (g,) = groups(results, **kw)
    return g


def test_a_cell_is_the_mean_with_a_student_t_interval_over_seeds():
    mean, lo, hi = seed_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) · s / √n
    assert seed_interval([0.4]) == (0.4, None, None)
    g = _group([_result("ce", s, cls, 0.3) for s, cls in enumerate((0.38, 0.40, 0.42))])
    cell = g.rows[0].cells["privacy_cls_race"]
    assert cell.n == 3 and cell.mean == pytest.approx(0.40) and cell.hi - cell.mean == pytest.approx(
        4.302653 * 0.02 / 3 ** 0.5, rel=1e-5)
    assert cell.example_half_width == pytest.approx(0.02) and cell.chance == 0.2 and not cell.includes_chance
    noisy = _group([_result("ce", s, cls, 0.3) for s, cls in enumerate((0.10, 0.30, 0.50))])
    assert noisy.rows[0].cells["privacy_cls_race"].includes_chance  # the seed CI holds chance 0.20
    assert "| ce | 1 | 0,1,2 | 30.00 ± 49.68 ° |" in render([_result("ce", s, c, 0.3) for s, c in enumerate((.1, .3, .5))])


def test_the_chance_mark_widens_the_seed_ci_by_the_examples_ci():
    """Three seeds at 0.52 ± 0.003 over seeds whose own CIs over one Test set each hold 0.50: not a leak (°);
    with narrow example CIs the same seeds are above chance."""
    def mia(halves):
        rs = [_result("ce", s, 0.3, 0.3) for s in range(3)]
        for r, v in zip(rs, (0.519, 0.520, 0.521)):
            m = r["evaluations"][0]["metrics"]["privacy_mia_loss_auc"]
            m.update(value=v, ci=[v - halves, v + halves])
        return _group(rs).rows[0].cells["privacy_mia_loss_auc"]
    wide, narrow = mia(0.03), mia(0.005)
    assert wide.lo > 0.5 and wide.includes_chance and wide.example_half_width == pytest.approx(0.03)
    assert not narrow.includes_chance
    rs = [_result("ce", s, 0.3, 0.3) for s in range(3)]  # a rate near 0: each side widens by its own width
    for r, v in zip(rs, (0.005, 0.006, 0.007)):
        m = r["evaluations"][0]["metrics"]["privacy_linkage_rank1"]
        m.update(value=v, ci=[v - 0.004, v + 0.012])  # every seed's own CI excludes chance (0.0002)
    rank1 = _group(rs).rows[0].cells["privacy_linkage_rank1"]
    assert rank1.mean - 0.008 < rank1.chance and not rank1.includes_chance  # a symmetric 0.008 would have held it


def test_a_privacy_cell_wholly_below_chance_is_marked_as_a_miscalibrated_attack_not_privacy():
    """An adversary trained on one label mix and scored on another can read below chance (ce_dp's PT on
    setup B): ‡ in the table and the CSV, and not the ° of a cell at chance."""
    rs = [_result("ce", s, cls, 0.3) for s, cls in enumerate((0.140, 0.145, 0.150))]  # example CIs ± 0.02
    cell = _group(rs).rows[0].cells["privacy_cls_race"]
    assert cell.below_chance and not cell.includes_chance
    assert "| ce | 1 | 0,1,2 | 14.50 ± 1.24 ‡ |" in render(rs)
    csv = pd.DataFrame(tidy(groups(rs))).query("row == 'ce' and metric == 'privacy_cls_race'")
    assert csv["ci_below_chance"].tolist() == [True]
    near = [_result("ce", s, cls, 0.3) for s, cls in enumerate((0.175, 0.180, 0.185))]  # the examples' CI reaches 0.2
    assert not _group(near).rows[0].cells["privacy_cls_race"].below_chance
    assert not _group([_result("ce", s, 0.3, 0.3) for s in range(3)]).rows[0].cells["privacy_cls_race"].below_chance
    for r in rs:  # an error metric under its chance level (a model that ignores the input) is good, not ‡
        r["evaluations"][0]["metrics"]["utility_err"] = {**r["evaluations"][0]["metrics"]["privacy_cls_race"]}
    assert not _group(rs).rows[0].cells["utility_err"].below_chance


def test_an_error_metric_is_marked_unless_its_whole_ci_lies_below_its_constant_prediction_error():
    """DPLH's landmark head at 0.0216 against 0.0174 for predicting Test's mean is worse than ignoring the image:
    °, as one at that error is; a head whose whole CI is below it is not marked, and neither is ever ‡."""
    def err(values, half=0.0005, chance=0.0174):
        rs = [_result("dplh", s, 0.3, 0.3) for s in range(3)]
        for r, v in zip(rs, values):
            r["evaluations"][0]["metrics"]["dplh_landmarks_mse"] = {
                "value": v, "direction": "lower_is_better", "chance": chance, "ci": [v - half, v + half], "n": 500}
        return rs, _group(rs).rows[0].cells["dplh_landmarks_mse"]
    worse, cell = err((0.0210, 0.0216, 0.0222))
    assert cell.includes_chance and not cell.below_chance
    assert "21.60 ± 0.0015 °" not in render(worse) and "| 0.0216 ± 0.0015 ° |" in render(worse)
    assert "| 0.017 |" in render(worse).replace(" / ", "|")  # its chance printed with the digits it needs
    assert err((0.0170, 0.0174, 0.0178))[1].includes_chance
    better = err((0.0120, 0.0125, 0.0130))[1]
    assert not better.includes_chance and not better.below_chance
    assert not err((0.0210, 0.0216, 0.0222), chance=None)[1].includes_chance  # no chance level: nothing to mark


def test_cells_print_the_digits_their_ci_needs_and_n_a_cells_say_why():
    from decobench.results.html import render_html
    from decobench.results.leaderboard import decimals

    assert [decimals(h) for h in (None, 0.0, 1e-17, 10.53, 0.5, 0.043, 0.0043)] == [2, 2, 2, 2, 2, 3, 4]
    rs = [_result("ce", s, 0.3, 0.3) for s in range(3)]
    for r, v in zip(rs, (0.8810, 0.8815, 0.8820)):  # an SSIM-like quantity with a narrow CI
        r["evaluations"][0]["metrics"]["kid_synthface"].update(value=v)
        r["evaluations"][0]["metrics"]["privacy_pt_race"] = {**r["evaluations"][0]["metrics"]["privacy_pt_race"],
                                                            "value": None, "note": "n/a: this method has no adversary"}
    table = render(rs)
    assert "0.8815 ± 0.0012" in table
    assert "n/a: privacy_pt_race for ce: this method has no adversary" in table
    for r in rs:
        r["_path"] = str(ROOT / f"seed{r['seed']}" / "result.json")
    page = render_html(rs, ROOT)["index.html"]
    assert 'title="n/a: this method has no adversary"' in page


def test_a_row_appears_only_with_every_declared_seed():
    results = [_result("ce", s, 0.3, 0.3) for s in (0, 1)] + [_result("metric", s, 0.3, 0.3) for s in (0, 1, 2)]
    g = _group(results)
    ce, metric = g.rows
    assert not ce.complete and ce.cells == {} and "seed(s) 2 of 0, 1, 2 not run" in ce.missing_reason
    assert metric.complete and metric.cells
    table = render(results)
    assert "| metric | 1 | 0,1,2 |" in table and "| ce |" not in table and "Not shown (incomplete): ce:" in table
    assert "Pareto tiers: none yet (no row has all its declared seeds)." in render(results[:2])  # only ce, 2 of 3
    from decobench.results.html import render_html
    for r in results:
        r["_path"] = str(ROOT / r["method"] / f"seed{r['seed']}" / "result.json")
    assert "Pareto tiers: none yet (no row has all its declared seeds)." in render_html(results[:2], ROOT)["index.html"]
    assert _group(results, seeds=[0, 1]).rows[0].complete  # what a cell averages is declared, not found
    twice = _group(results + [_result("metric", 2, 0.3, 0.3)]).rows[1]
    assert not twice.complete and "present twice" in twice.missing_reason


def test_seeds_made_by_other_method_code_or_recipe_are_other_rows(tmp_path):
    """A change to the method, trainer or DP code (method_version) or to the training recipe makes another row:
    its seeds are never averaged with the old ones, and validate does not call them the same cell."""
    from decobench.results.validate import problems

    old = [_result("ce", s, 0.3, 0.3) for s in range(3)]
    new = copy.deepcopy(old)
    longer = copy.deepcopy(old)
    for r in new:
        r["method_version"] = "9:0123456789abcdef"
    for r in longer:
        r["config"]["train"]["max_steps"] += 100
    rows = _group(old + new + longer).rows
    assert len(rows) == 3 and all(r.complete and len(r.results) == 3 for r in rows)
    assert any("method_version=9:0123456789abcdef" in r.label for r in rows)
    assert any("train.max_steps=" in r.label for r in rows)
    for name, rs in (("old", old), ("new", new), ("longer", longer)):
        for r in rs:
            _write(tmp_path / name, f"seed{r['seed']}", r)
    assert not any("duplicate cell" in p for ps in problems([tmp_path]).values() for p in ps)


def test_incomparable_results_get_their_own_group_with_the_reason():
    results = [_result("ce", s, 0.3, 0.3) for s in range(3)]
    other = [copy.deepcopy(r) for r in results[:1]]
    other[0]["config"]["eval"]["probe_epochs"] += 1
    other[0]["comparability_key"] = comparability_key(other[0])
    main, odd = groups(results + other)
    assert main.incomparable_with is None and len(main.rows[0].results) == 3
    assert odd.incomparable_with == main.key and odd.differs_in == ["eval"]
    assert f"Not comparable with group {main.key}** (differs in eval)" in render(results + other)
    gpu = copy.deepcopy(results)
    for r in gpu:  # the same cells made in bf16 on a GPU
        r["precision"] = "bf16-autocast, bf16 release weights"
        r["comparability_key"] = comparability_key(r)
    main, odd = groups(results + gpu)  # a tie in size: either is the reference, the other names the field
    assert odd.differs_in == ["precision"] and {main.key, odd.key} == {results[0]["comparability_key"], gpu[0]["comparability_key"]}


def test_pareto_tiers_separate_only_where_cis_do():
    results = []
    for s in range(3):
        j = 0.01 * s
        results += [_result("private", s, 0.25 + j, 0.40 + j),     # low leakage, same utility as the others
                    _result("leaky", s, 0.45 + j, 0.40 + j),       # dominated by private on privacy
                    _result("useful", s, 0.45 + j, 0.60 + j),      # worse privacy, better utility: a trade-off
                    _result("noisy", s, (0.10, 0.60, 0.30)[s], (0.2, 0.8, 0.5)[s])]  # CIs too wide to rank
    points = {p.row.method: p.tier for p in tiers(_group(results))}
    assert points == {"private": 1, "useful": 1, "noisy": 1, "leaky": 2}
    two = [r for r in results if r["seed"] < 2]  # two seeds: shown, but not ranked
    assert tiers(_group(two, seeds=[0, 1])) == []
    assert "not ranked (fewer than 3 seeds): leaky, noisy, private, useful." in render(two, seeds=[0, 1])


def test_a_complete_row_without_an_axis_value_is_named_not_ranked_with_why():
    """Three seeds but one lacks the privacy value (the attack was left out): the row is shown, not ranked, and
    both renderers say why instead of claiming no row has its seeds."""
    from decobench.results.html import render_html

    results = [_result("ce", s, 0.3, 0.3) for s in range(3)]
    results[1]["evaluations"][0]["metrics"]["privacy_cls_race"].update(value=None, ci=None)
    for r in results:
        r["_path"] = str(ROOT / f"seed{r['seed']}" / "result.json")
    assert tiers(_group(results)) == []
    line = "not ranked (a seed lacks the privacy or utility value): ce."
    table, page = render(results), render_html(results, ROOT)["index.html"]
    assert line in table and "none yet" not in table
    assert "Not ranked (a seed lacks the privacy or utility value): ce." in page and "none yet" not in page


def test_the_tidy_table_loads_in_pandas_one_record_per_row_and_metric():
    results = [_result(m, s, 0.3, 0.3) for m in ("ce", "metric") for s in range(3)]
    df = pd.DataFrame(tidy(groups(results)))
    cls = df[(df.metric == "privacy_cls_race") & (df.kind == "method")]
    assert sorted(cls["row"]) == ["ce", "metric"] and (cls["n"] == 3).all() and (cls["seeds"] == "0,1,2").all()
    assert {"ci_lo", "ci_hi", "chance", "majority", "ci_includes_chance", "key", "epsilon", "note"} <= set(df.columns)
    fd = df[df.metric == "fd_synthface"]  # n/a in every result: no mean, and the attack's reason
    assert fd["mean"].isna().all() and fd["note"].str.contains("feature dimensions").all()
    assert df.groupby(["row", "metric"]).size().max() == 1


def _write(tmp_path, name, r) -> Path:
    p = tmp_path / name / "result.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(r))
    return p


def test_validate_lists_every_problem_of_every_file(tmp_path):
    from decobench.cli.main import main
    from decobench.results.validate import problems

    dp_file = sorted(TEMPLATE.parent.parent.parent.parent.glob("ce_dp/G-*/seed0/result.json"))[0]
    good = json.loads(TEMPLATE.read_text())
    _write(tmp_path, "a_good", good)
    _write(tmp_path, "again", good)                               # the same cell twice (read second)
    bad = copy.deepcopy(good)
    bad["split_hashes"]["synthfaces-a"]["train.txt"] = "0" * 64   # other splits
    bad["decobench_commit"] += "-dirty"
    bad["seed"] = 7
    bad["comparability_key"] = comparability_key(bad)
    _write(tmp_path, "bad", bad)
    eps = json.loads(dp_file.read_text())
    eps["dp"]["epsilon"] /= 2                                     # not what the accountant says
    _write(tmp_path, "eps", eps)
    z = json.loads(dp_file.read_text())
    z["dp"]["history"][0][0] *= 2                                 # not the noise multiplier it reports
    _write(tmp_path, "z", z)
    recipe = copy.deepcopy(good)
    recipe["config"]["train"]["max_steps"] += 100                 # another row of the board, not a duplicate
    _write(tmp_path, "recipe", recipe)
    schema = copy.deepcopy(good)
    del schema["seed"], schema["evaluations"][0]["metrics"]["privacy_cls_race"]["direction"]
    _write(tmp_path, "schema", schema)
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "result.json").write_text('{"schema_version": 2, ')
    found = {Path(k).parent.name: v for k, v in problems([tmp_path]).items()}
    assert set(found) == {"again", "bad", "eps", "z", "schema", "torn"}  # "a_good" is the first of the pair
    assert any(p.startswith("dp/history: a noise multiplier other than") for p in found["z"])
    assert "duplicate cell" in found["again"][0]
    assert any(p.startswith("split_hashes/synthfaces-a: train.txt differ") for p in found["bad"])
    assert any("-dirty" in p for p in found["bad"]) and len(found["bad"]) == 2
    assert found["eps"] == [p for p in found["eps"] if p.startswith("dp/epsilon")] and found["eps"]
    assert len(found["schema"]) == 2 and any("'seed' is a required property" in p for p in found["schema"])
    assert "not a readable JSON file" in found["torn"][0]
    assert main(["validate", str(tmp_path)]) == 2
    assert main(["validate", str(tmp_path / "a_good")]) == 0


def test_the_board_skips_a_result_whose_key_does_not_recompute(tmp_path):
    from decobench.results.leaderboard import collect

    for s in range(3):
        _write(tmp_path, f"seed{s}", _result("ce", s, 0.3, 0.3))
    edited = _result("ce", 3, 0.3, 0.3)
    edited["config"]["eval"]["probe_epochs"] += 1  # its key still says the old config
    _write(tmp_path, "edited", edited)
    said = []
    assert sorted(r["seed"] for r in collect(tmp_path, warn=said.append)) == [0, 1, 2]
    assert len(said) == 1 and "edited" in said[0] and "does not recompute" in said[0]


def test_the_leaderboard_command_writes_the_tables_and_the_csv(tmp_path):
    from decobench.cli.main import main

    for s in range(3):
        _write(tmp_path / "runs", f"seed{s}", _result("ce", s, 0.3 + s / 100, 0.3))
    md, csv = tmp_path / "board.md", tmp_path / "cells.csv"
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(md), "--csv", str(csv)]) == 0
    assert "| ce | 1 | 0,1,2 | 31.00 ± 2.48 |" in md.read_text()
    df = pd.read_csv(csv)
    assert df.loc[(df.metric == "privacy_cls_race") & (df["row"] == "ce"), "mean"].item() == pytest.approx(0.31)
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--seeds", "0,1,2,3"]) == 0  # shown as missing


def test_a_longer_training_run_is_its_own_row_not_a_second_copy_of_the_seed():
    results = [_result("ce", s, 0.3, 0.3) for s in range(3)]
    longer = [copy.deepcopy(r) for r in results]
    for r in longer:
        r["config"]["train"]["max_steps"] *= 2
    rows = _group(results + longer).rows
    steps = results[0]["config"]["train"]["max_steps"]
    assert sorted(r.label for r in rows) == sorted([f"ce [train.max_steps={steps}]", f"ce [train.max_steps={2 * steps}]"])
    assert all(r.complete for r in rows)


def test_a_column_no_run_measured_shows_no_chance():
    """PT is n/a for a method without an adversary; its n/a record knows its chance but not its unit, so a
    column of n/a cells shows no chance (it once showed 0.20 beside percentages)."""
    results = [_result("baseline", s, 0.3, 0.3) for s in (0, 1, 2)]
    assert results[0]["evaluations"][0]["metrics"]["privacy_pt_race"]["value"] is None
    lines = render(results).splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    cols = [c.strip() for c in lines[head].split("|")]
    chance = [c.strip() for c in lines[head + 2].split("|")]
    assert chance[1] == "chance / majority"
    assert chance[cols.index("privacy_pt_race ↓")] == "—"
    assert chance[cols.index("privacy_cls_race ↓")] == "20.00 / 27.15"
