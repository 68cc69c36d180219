"""Committed results were made by the code at HEAD: schema v2, clean tree, the current method and trainer
code, the current attack versions, and the committed table is what the leaderboard renders from them.

v1's committed table came from an older working tree and did not reproduce (gender 55.6 % committed,
76.8 % at HEAD); a code change that alters what a committed result means now fails here until the
results are regenerated (README: "Regenerating the committed results")."""

import io
from pathlib import Path

import pandas as pd
import pytest

from decobench.registry import attacks, methods
from decobench.results.aggregate import groups
from decobench.results.board import board_markdown, tidy_frame
from decobench.results.expected import declared_seeds, missing, render_missing, render_missing_html
from decobench.results.leaderboard import collect
from decobench.results.validate import problems
from decobench.run.identity import method_version
from decobench.suite.grid import load_grid

BOARD = Path(__file__).resolve().parent.parent / "leaderboard"
SKIPPED: list[str] = []
RESULTS = collect(BOARD / "results", warn=SKIPPED.append)
GRID = load_grid("embedded")  # the board is made from the embedded preset (README: the command)
SEEDS = declared_seeds(GRID)
LACKING = missing(GRID, BOARD / "results")


def test_no_committed_result_has_an_old_schema():
    assert not SKIPPED


def test_there_are_committed_results_for_three_seeds():
    assert RESULTS, "leaderboard/results holds no result files"
    seeds = {}
    for r in RESULTS:
        seeds.setdefault((r.get("track", "data"), r["method"]), set()).add(r["seed"])
    data = {m: s for (t, m), s in seeds.items() if t == "data"}
    assert set(data) >= {"baseline", "ce", "ce_mask", "metric"} and all(len(s) >= 3 for s in data.values())
    # a row the board shows has its three seeds (others are listed as incomplete, never half-averaged)
    shown = {r.method for g in groups(RESULTS) for r in g.rows if r.complete}
    assert shown >= set(data) and all(len(seeds[(g.components["track"], r.method)]) >= 3
                                      for g in groups(RESULTS) for r in g.rows if r.complete)


@pytest.mark.parametrize("r", RESULTS, ids=lambda r: f"{r['method']}-seed{r['seed']}")
def test_each_result_matches_the_code_at_head(r):
    assert not r["decobench_commit"].endswith("-dirty") and r["decobench_commit"] != "unknown"
    cls = methods.get(r["method"])
    if r.get("track") == "cloak":
        from decobench.run.cloak_track import cloak_version

        assert r["method_version"] == cloak_version(cls), "cloak method or crafting code changed"
    else:
        assert r["method_version"] == method_version(cls, r.get("track", "data")), "method, trainer or DP code changed"
    for name, a in r["attacks"].items():
        assert attacks.get(name).version == a["version"], f"attack {name} changed version"
    if "dp" in r:  # the ε a DP row shows is what Opacus's accountant computes from the recorded history
        from decobench.run.dp import epsilon

        assert r["dp"]["epsilon"] == pytest.approx(epsilon(r["dp"]["accountant"], r["dp"]["history"], r["dp"]["delta"]))
    from decobench.models.fr.zoo import weights_sha256

    for ev in r["evaluations"]:  # identity figures were made with the committed FR zoo
        for name, sha in ev["attack_info"].get("identity_linkage", {}).get("fr_weights_sha256", {}).items():
            assert sha == weights_sha256(name), f"FR model {name} was retrained"


def test_committed_table_is_rendered_from_the_committed_results():
    from decobench.results.html import input_hash

    first, text = (BOARD / "embedded.md").read_text().split("\n", 1)
    assert first.startswith("<!-- decobench leaderboard from") and f"input sha256 {input_hash(RESULTS)}," in first
    assert "-dirty" not in first and "generator commit unknown" not in first  # made from a clean checkout
    assert text.strip() == board_markdown(RESULTS, SEEDS, render_missing(GRID, LACKING, "embedded")).strip()
    committed = pd.read_csv(BOARD / "embedded.csv")
    assert (committed["input_sha256"] == input_hash(RESULTS)).all()
    assert not committed["generator_commit"].str.endswith("-dirty").any()
    made_by = committed["generator_commit"].iloc[0]  # the one field a regeneration elsewhere changes
    again = pd.read_csv(io.StringIO(tidy_frame(RESULTS, SEEDS, made_by).to_csv(index=False)))
    pd.testing.assert_frame_equal(committed, again)


def test_committed_page_and_plots_are_rendered_from_the_committed_results():
    from decobench.results.html import render_html

    def page(text):  # the generating checkout's commit is the one line that may differ
        return [line for line in text.splitlines() if "decobench-generator-commit" not in line]
    files = render_html(RESULTS, BOARD, SEEDS, tail=render_missing_html(GRID, LACKING, "embedded"))
    committed = (BOARD / "index.html").read_text()
    assert "-dirty" not in committed.split('name="decobench-generator-commit" content="')[1].split('"')[0]
    assert page(committed) == page(files.pop("index.html"))
    for name, text in files.items():
        assert (BOARD / name).read_text() == text, name
    assert sorted(p.name for p in BOARD.glob("pareto-*.svg")) == sorted(files)  # none stale


def test_decobench_validate_accepts_the_committed_results():
    assert problems([BOARD / "results"]) == {}


def test_committed_cloak_table_is_rendered_from_the_committed_results():
    """leaderboard/cloaks.md (the GA-OPOM paper's Table 1 layout, README's cloak table) is what
    `decobench cloaks table --runs leaderboard/results` prints from the committed cloak results."""
    from decobench.results.cloak_table import table1

    assert sum(r.get("track") == "cloak" for r in RESULTS) >= 36
    assert (BOARD / "cloaks.md").read_text().strip() == table1(RESULTS, [0, 1, 2]).strip()
