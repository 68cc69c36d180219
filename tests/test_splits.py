import shutil

import pytest

from decobench.data.open import open_dataset
from decobench.splits import SPLITS, SplitError, build_splits, load_split, read_manifest, splits_dir, verify_splits


@pytest.mark.parametrize("name", ["synthfaces-a", "synthfaces-b"])
def test_committed_splits_match_the_data(name):
    assert verify_splits(open_dataset(name)) == []


@pytest.mark.parametrize("name", ["synthfaces-a", "synthfaces-b"])
def test_committed_split_quality(name):
    m = read_manifest(name)
    n = m["n_images"]
    assert sum(m["sizes"].values()) == n
    assert max(m["size_error_pct"].values()) <= 1.0
    assert max(m["max_class_deviation_pp"].values()) <= 1.0
    assert m["identities_in_two_splits"] == 0 and m["identity_disjoint"]
    # recompute the quality from the files, not from the manifest's own numbers
    ds = open_dataset(name)
    rec = ds.records.set_index("image_id")
    ids = {s: load_split(name, s) for s in SPLITS}
    for col in ("race", "age", "race_orig"):
        whole = rec[col].value_counts(normalize=True)
        for s in SPLITS:
            share = rec.loc[ids[s], col].value_counts(normalize=True).reindex(whole.index, fill_value=0)
            assert (share - whole).abs().max() * 100 <= 1.0, (s, col)
    people = [set(rec.loc[ids[s], "identity"]) for s in SPLITS]
    assert all(not (people[i] & people[j]) for i in range(5) for j in range(i + 1, 5))


def test_real_dataset_splits_are_deterministic(fairface_root, tmp_path):
    ds = open_dataset("fairface", fairface_root)
    m1 = build_splits(ds, tmp_path / "one")
    m2 = build_splits(open_dataset("fairface", fairface_root), tmp_path / "two")
    assert m1["files_sha256"] == m2["files_sha256"]
    assert verify_splits(ds, tmp_path / "one") == []
    assert abs(m1["sizes"]["test"] / m1["n_images"] - 0.15) < 0.02


def test_celeba_splits_are_identity_disjoint(celeba_root, tmp_path):
    ds = open_dataset("celeba", celeba_root)
    m = build_splits(ds, tmp_path)
    assert m["identity_disjoint"] and m["identities_in_two_splits"] == 0


def test_verify_fails_loudly_on_tampering(tmp_path):
    shutil.copytree(splits_dir() / "synthfaces-a", tmp_path / "synthfaces-a")
    p = tmp_path / "synthfaces-a" / "val.txt"
    lines = p.read_text().split()
    p.write_text("\n".join(lines[1:] + [load_split("synthfaces-a", "test")[0]]) + "\n")
    problems = verify_splits(open_dataset("synthfaces-a"), tmp_path)
    assert any("val.txt: sha256" in x for x in problems)
    assert any("val.txt: differs" in x for x in problems)
    assert any("two splits" in x for x in problems)
    with pytest.raises(SplitError, match="does not match the sha256"):
        load_split("synthfaces-a", "val", tmp_path)


def test_verify_notices_changed_data(fairface_root, tmp_path):
    build_splits(open_dataset("fairface", fairface_root), tmp_path)
    csv = fairface_root / "fairface_label_train.csv"
    csv.write_text(csv.read_text().replace("train/3.jpg,", "train/3.jpg,X", 0).replace(",Male,White,", ",Female,White,", 1))
    problems = verify_splits(open_dataset("fairface", fairface_root), tmp_path)
    assert any("dataset_fingerprint" in x for x in problems)


def test_missing_splits_say_how_to_build(tmp_path):
    with pytest.raises(SplitError, match="decobench splits build --dataset synthfaces-a"):
        load_split("synthfaces-a", "gen", tmp_path)
