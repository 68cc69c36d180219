"""Identity privacy across tracks (issue 9 §5): cloaks and decoupling releases in one table, each group apart.

Checked on the committed results: the cross-track table recomputes what each attack reported by another path
(the cloak's black-box mean from its per-target metrics; linkage from its per-model record), a release that
changes nothing removes no hits, and the board shows the two groups under their own headings."""

from pathlib import Path

import numpy as np
import pytest

from decobench.results.aggregate import groups
from decobench.results.identity_table import identity_groups, render_identity
from decobench.results.leaderboard import collect, render

RESULTS = collect(Path(__file__).resolve().parent.parent / "leaderboard" / "results")


def test_both_tracks_appear_as_their_own_groups():
    titles = [g.title for g in identity_groups(groups(RESULTS))]
    assert any(t.startswith("Cloak track") for t in titles) and any(t.startswith("Data track") for t in titles)
    assert not any(t.startswith("Model track") for t in titles)  # a released encoder has no images to search
    assert "## Identity privacy across tracks" in render(RESULTS)


def test_cloak_rows_agree_with_the_attacks_black_box_mean():
    (g,) = [g for g in identity_groups(groups(RESULTS)) if g.title.startswith("Cloak")]
    row = next(r for r in g.rows if r.label == "fi_uap [surrogate=resnet-arcface]")
    runs = [r for r in RESULTS if r.get("track") == "cloak" and r["method"] == "fi_uap"
            and r["method_params"]["surrogate"] == "resnet-arcface"]
    want = np.mean([100 * (1 - r["evaluations"][0]["metrics"]["privacy_fr_top1_blackbox"]["value"]) for r in runs])
    assert row.protect[1][0] == pytest.approx(want, abs=1e-4)
    assert 0 < row.removed[1] < 100 and row.unprotected[1] < row.protect[1][0]


def test_a_release_that_changes_nothing_removes_no_hits():
    import copy

    data = [copy.deepcopy(r) for r in RESULTS if r.get("track", "data") == "data" and r["method"] == "baseline"
            and (r["setup"], r["regime"]) == ("A", "G")  # one group: setup B's baseline rows are committed too
            and any("identity_linkage" in e["attack_info"] for e in r["evaluations"])]
    for r in data:
        for e in r["evaluations"]:
            for m in e["attack_info"].get("identity_linkage", {}).get("per_model", {}).values():
                m["rank1"], m["rank5"] = m["unprotected_rank1"], m["unprotected_rank5"]
    (g,) = identity_groups(groups(data))
    assert g.rows[0].removed[1] == pytest.approx(0) and g.rows[0].protect[1][0] == pytest.approx(g.rows[0].unprotected[1])
    assert "| baseline | 0,1,2 |" in render_identity(groups(data))
