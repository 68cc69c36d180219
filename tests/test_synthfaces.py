import numpy as np
import pytest

from decobench.data.labels import RACES
from decobench.data.open import open_dataset
from decobench.data.synthfaces import DOMAINS, build_population, render_faces, render_nonfaces
from decobench.data.synthfaces.population import with_size

# pytest -n N: this module's tests share a module fixture, so one worker runs them all
pytestmark = pytest.mark.xdist_group("test_synthfaces")


@pytest.fixture(scope="module")
def small_a():
    return build_population(with_size(DOMAINS["synthfaces-a"], 300))


def test_deterministic_and_batch_independent(small_a):
    ids = np.array([5, 77, 1200, 3000, 4499])
    one, lm1 = render_faces(small_a, ids, 64)
    again = build_population(with_size(DOMAINS["synthfaces-a"], 300))
    two, lm2 = render_faces(again, ids, 64)
    assert np.array_equal(one, two) and np.array_equal(lm1, lm2)
    singles = np.concatenate([render_faces(small_a, [i], 64)[0] for i in ids])
    assert np.array_equal(one, singles)


def test_shapes_and_labels(small_a):
    imgs, lms = render_faces(small_a, np.arange(40), 48)
    assert imgs.shape == (40, 48, 48, 3) and imgs.dtype == np.uint8 and lms.shape == (40, 5, 2)
    lab = small_a.labels
    assert set(lab.race) <= set(range(5)) and set(lab.gender) <= {0, 1} and set(lab.age) <= set(range(9))
    assert {"expression", "identity", "yaw_deg", "pitch_deg", "roll_deg", "profile"} <= set(lab.columns)
    assert set(lab.expression) == {0, 1} and set(lab.profile) == {0, 1}


def test_identities_have_15_images_with_fixed_traits(small_a):
    g = small_a.labels.groupby("identity")
    assert (g.size() >= 15).all()
    assert (g.race.nunique() == 1).all() and (g.gender.nunique() == 1).all()
    # pose, expression and lighting vary within an identity
    assert (g.yaw_deg.std() > 5).all()
    assert (g.expression.nunique() == 2).mean() > 0.9


def test_landmarks_sit_on_the_face(small_a):
    idx = np.flatnonzero(small_a.labels.profile.to_numpy() == 0)[:50]
    imgs, lms = render_faces(small_a, idx, 64)
    assert (lms > 2).all() and (lms < 61).all()
    le, re, nose, ml, mr = (lms[:, k] for k in range(5))
    assert (le[:, 0] < re[:, 0]).all() and (ml[:, 0] < mr[:, 0]).all()  # left is left
    assert (nose[:, 1] > le[:, 1]).all() and (ml[:, 1] > nose[:, 1]).all()  # eyes above nose above mouth


def test_joint_distribution_age_differs_by_race():
    lab = build_population("synthfaces-b").labels
    young = lab.groupby("race").apply(lambda d: (d.age <= 1).mean())
    assert young[RACES.index("Asian")] > 2 * young[RACES.index("Black")]


def test_domains_differ_like_fairface_and_utkface():
    a, b = open_dataset("synthfaces-a"), open_dataset("synthfaces-b")
    assert a.records.race_orig.nunique() == 7 and b.records.race_orig.nunique() == 5
    assert b.records.age_orig.str.isdigit().all() and a.records.age_orig.isin(["20-29", "more than 70"]).any()
    assert a.records.profile.mean() > 2 * b.records.profile.mean()
    ia = a.load_images(a.records.image_id[:200].tolist(), 32).astype(float)
    ib = b.load_images(b.records.image_id[:200].tolist(), 32).astype(float)
    # style: b is warmer (red over blue) and crisper (more high-frequency energy)
    assert (ib[..., 0] - ib[..., 2]).mean() > (ia[..., 0] - ia[..., 2]).mean()


def test_no_single_pixel_statistic_gives_race_away():
    """Mean image colour predicts race far worse than a trained classifier can (nuisances blur it)."""
    ds = open_dataset("synthfaces-a")
    rec = ds.records.iloc[::15].iloc[:1200]
    feats = ds.load_images(rec.image_id.tolist(), 32).reshape(len(rec), -1, 3).mean(1)
    y = rec.race.to_numpy()
    tr, te = slice(0, 800), slice(800, None)
    cents = np.stack([feats[tr][y[tr] == k].mean(0) for k in range(5)])
    pred = np.argmin(((feats[te][:, None] - cents[None]) ** 2).sum(-1), 1)
    acc = (pred == y[te]).mean()
    assert acc < 0.40, acc  # majority class is ~26%; the calibrated ResNet18 reaches far more


def test_nonface_patches():
    p = render_nonfaces(16, seed=3, size=32)
    assert p.shape == (16, 32, 32, 3) and p.dtype == np.uint8
    assert np.array_equal(p, render_nonfaces(16, seed=3, size=32))
    assert not np.array_equal(p, render_nonfaces(16, seed=4, size=32))


def test_bad_domain_table_is_rejected():
    from dataclasses import replace
    bad = replace(DOMAINS["synthfaces-a"], race_probs=(0.5,) * 7)
    with pytest.raises(ValueError, match="race_probs sum"):
        build_population(bad)
