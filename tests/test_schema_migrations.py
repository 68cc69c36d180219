"""Older result files stay readable: one frozen file per schema version, migrated to the current schema,
kept apart from current results on the board."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from decobench.results.build import comparability_key
from decobench.results.leaderboard import collect, render
from decobench.results.migrate import MIGRATIONS, load_result, migrate
from decobench.results.schema import SCHEMA_VERSION, ResultValidationError

FIXTURES = Path(__file__).parent / "fixtures" / "results"


def test_every_schema_version_has_a_frozen_file_and_every_older_one_a_migration():
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION))
    for v in range(1, SCHEMA_VERSION + 1):
        assert json.loads((FIXTURES / f"v{v}.json").read_text())["schema_version"] == v


def test_the_current_version_reads_unchanged():
    raw = json.loads((FIXTURES / f"v{SCHEMA_VERSION}.json").read_text())
    r = load_result(FIXTURES / f"v{SCHEMA_VERSION}.json")
    assert r == raw and comparability_key(r) == r["comparability_key"]


@pytest.mark.parametrize("v", sorted(MIGRATIONS))
def test_an_older_file_migrates_keeps_its_numbers_and_is_keyed_apart(v):
    raw = json.loads((FIXTURES / f"v{v}.json").read_text())
    before = copy.deepcopy(raw)
    r = migrate(raw)
    assert raw == before  # the input is not touched
    assert r["schema_version"] == SCHEMA_VERSION and r["schema_origin"] == v
    assert comparability_key(r) == r["comparability_key"]
    for ev_old, ev in zip(raw["evaluations"], r["evaluations"]):
        assert {k: m["value"] for k, m in ev["metrics"].items()} == {k: m["value"] for k, m in ev_old["metrics"].items()}
    current = load_result(FIXTURES / f"v{SCHEMA_VERSION}.json")
    assert r["comparability_key"] != current["comparability_key"]


def test_v1_gets_its_majority_rates_and_real_baseline():
    r = load_result(FIXTURES / "v1.json")
    ev = r["evaluations"][0]
    assert ev["metrics"]["privacy_cls_race"]["majority"] == 0.274
    assert ev["reference"]["baseline_real"]["privacy_cls_race"]["value"] == 0.462
    assert r["attacks"] == {"cls": "v1", "pt": "v1", "probe": "v1", "quality": "v1"}


def test_the_board_shows_a_migrated_file_in_its_own_group(tmp_path):
    for v in range(1, SCHEMA_VERSION + 1):
        (tmp_path / f"v{v}").mkdir()
        shutil.copy(FIXTURES / f"v{v}.json", tmp_path / f"v{v}" / "result.json")
    results = collect(tmp_path)
    assert len(results) == SCHEMA_VERSION
    text = render(results, [0])
    assert "migrated from schema v1" in text and "Not comparable with group" in text


def test_an_unknown_version_is_a_clear_error(tmp_path):
    raw = json.loads((FIXTURES / f"v{SCHEMA_VERSION}.json").read_text())
    raw["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ResultValidationError, match="needs a newer decobench"):
        migrate(raw)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "result.json").write_text(json.dumps(raw))
    warned = []
    assert collect(tmp_path, warn=warned.append) == [] and "skipping" in warned[0]
