"""DECO-Bench A.2's front-face protocol (--set faces=frontal): every split keeps its frontal faces only."""

import importlib.util
import json

import pytest

from decobench.data.base import DatasetError
from decobench.data.frontal import frontal_ids
from decobench.data.open import open_dataset
from decobench.registry import methods
from decobench.results.aggregate import key_components
from decobench.run.config import ConfigError, resolve
from decobench.splits import load_split


def test_synthfaces_keeps_exactly_its_frontal_faces():
    ds = open_dataset("synthfaces-a")
    ids = load_split("synthfaces-a", "gen")
    kept = frontal_ids(ds, ids)
    profile = ds.records.set_index("image_id")["profile"]
    assert 0 < len(kept) < len(ids) and (profile.loc[kept] == 0).all()
    assert set(ids) - set(kept) == set(profile.loc[ids][profile.loc[ids] == 1].index)
    assert kept == [i for i in ids if i in set(kept)]  # the split's order is kept


def test_the_setting_changes_the_key_and_leaves_every_older_config_as_it_hashed():
    ce = methods.get("ce")
    plain, _ = resolve("embedded", ce, "ce")
    front, _ = resolve("embedded", ce, "ce", {"faces": "frontal"})
    assert "faces" not in plain.as_dict() and front.as_dict()["faces"] == "frontal"
    committed = json.loads(next(iter(sorted(__import__("pathlib").Path(__file__).resolve().parent.parent.glob(
        "leaderboard/results/A/ce/*/seed0/result.json")))).read_text())
    assert committed["config_hash"] == plain.hash()  # results made before the setting existed still match
    result = {**committed, "config": front.as_dict()}
    assert key_components(result)["faces"] == "frontal" and "faces" not in key_components(committed)
    with pytest.raises(ConfigError, match="faces"):
        resolve("embedded", ce, "ce", {"faces": "profile"})


@pytest.mark.skipif(importlib.util.find_spec("dlib") is not None, reason="dlib is installed: the detector runs")
def test_a_real_dataset_without_dlib_says_what_to_install(fairface_root):
    ds = open_dataset("fairface", fairface_root)
    with pytest.raises(DatasetError, match=r"decobench\[dlib\]"):
        frontal_ids(ds, ds.records.image_id[:4].tolist())


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="needs the dlib extra")
def test_a_real_dataset_is_filtered_by_dlibs_detector(fairface_root, tmp_path):
    from decobench.run.cache import StageCache

    ds = open_dataset("fairface", fairface_root)
    ids = ds.records.image_id[:8].tolist()
    cache = StageCache(tmp_path)
    kept = frontal_ids(ds, ids, cache)
    assert set(kept) <= set(ids) and frontal_ids(ds, ids, cache) == kept  # the second call reads the cache


def test_a_frontal_run_trains_and_releases_frontal_faces_only(tmp_path):
    import pandas as pd

    from decobench.run.runner import run_benchmark

    sets = {"faces": "frontal", "max_steps": "2", "eval_every": "2", "max_train_images": "64", "max_val_images": "16",
            "release.max_images_per_split": "24", "release.num_inference_steps": "2", "eval.max_test_images": "32",
            "eval.max_gen_val_images": "16"}
    result, _ = run_benchmark("baseline", "A", profile="quick", out=tmp_path, overrides=sets, attacks=["pt"],
                              log=lambda *a: None, device="cpu")
    assert result["config"]["faces"] == "frontal"
    profile = open_dataset("synthfaces-a").records.set_index("image_id")["profile"]
    (train,) = tmp_path.glob(".cache/train-*/inputs.json")
    (released,) = tmp_path.glob(".cache/release-*/labels.csv")
    sources = pd.read_csv(released)["source_image_id"].tolist()
    assert len(sources) == 24 and (profile.loc[sources] == 0).all()
    assert json.loads(train.read_text())["train"]["max_train_images"] == 64
