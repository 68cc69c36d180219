import pytest

from decobench.data.base import DatasetError
from decobench.data.labels import AGE_BINS, RACES, age_years_to_bin
from decobench.data.open import open_dataset
from decobench.data.utkface import parse_utk_name


@pytest.mark.parametrize("age,bin_", [(0, "0-2"), (2, "0-2"), (3, "3-9"), (9, "3-9"), (10, "10-19"), (19, "10-19"),
                                      (20, "20-29"), (69, "60-69"), (70, "70+"), (116, "70+")])
def test_utk_age_mapping(age, bin_):
    assert AGE_BINS[age_years_to_bin(age)] == bin_


def test_fairface_mapping_and_problems(fairface_root):
    ds = open_dataset("fairface", fairface_root)
    rec = ds.records
    assert len(rec) == 211  # 210 train + 1 val, the two bad rows excluded
    assert len(ds.problems) == 2
    assert any("Martian" in p for p in ds.problems) and any("does not exist" in p for p in ds.problems)
    ea = rec[rec.race_orig == "East Asian"]
    assert (ea.race == RACES.index("Asian")).all()
    assert (rec[rec.race_orig == "Southeast Asian"].race == RACES.index("Asian")).all()
    assert (rec[rec.race_orig.isin(["Latino_Hispanic", "Middle Eastern"])].race == RACES.index("Others")).all()
    assert (rec[rec.age_orig == "more than 70"].age == AGE_BINS.index("70+")).all()
    imgs = ds.load_images(rec.image_id[:3].tolist(), 16)
    assert imgs.shape == (3, 16, 16, 3)


def test_fairface_wrong_columns(tmp_path):
    (tmp_path / "fairface_label_train.csv").write_text("name,age\nx.jpg,3-9\n")
    with pytest.raises(DatasetError, match="lacks columns"):
        open_dataset("fairface", tmp_path)


def test_missing_root_shows_layout(tmp_path):
    with pytest.raises(DatasetError, match="fairface_label_train.csv"):
        open_dataset("fairface", tmp_path / "nope")
    with pytest.raises(DatasetError, match="Expected layout"):
        open_dataset("utkface", None)


def test_utkface_reports_files_lacking_a_field(utkface_root):
    ds = open_dataset("utkface", utkface_root)
    assert len(ds.records) == 150
    bad = "\n".join(ds.problems)
    assert "39_1_20170116174525125.jpg.chip.jpg" in bad and "61_3_20170109150557335.jpg.chip.jpg" in bad
    r = ds.records.iloc[0]
    assert r.age == age_years_to_bin(int(r.age_orig))


@pytest.mark.parametrize("name,msg", [("39_1_20170116174525125.jpg.chip.jpg", "4 '_'-separated"),
                                      ("200_0_1_2017.jpg.chip.jpg", "age"), ("20_5_1_2017.jpg.chip.jpg", "gender"),
                                      ("20_0_9_2017.jpg.chip.jpg", "race")])
def test_utk_name_parsing_never_guesses(name, msg):
    with pytest.raises(ValueError, match=msg):
        parse_utk_name(name)


def test_celeba(celeba_root):
    ds = open_dataset("celeba", celeba_root)
    assert len(ds.records) == 120 and ds.has_identities and ds.attributes == ["gender"]
    assert any("000999.jpg" in p for p in ds.problems)
    assert "Male_orig" in ds.strat_columns


def test_corrupt_image_is_a_clear_error_and_found_by_check(fairface_root):
    (fairface_root / "train/5.jpg").write_bytes(b"not a jpeg at all")
    ds = open_dataset("fairface", fairface_root)
    with pytest.raises(DatasetError, match="cannot be decoded"):
        ds.load_images(["train/5.jpg"], 16)
    bad = ds.check_images()
    assert len(bad) == 1 and "train/5.jpg" in bad[0]
