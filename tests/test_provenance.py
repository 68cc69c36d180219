"""Provenance and caching: run folders, cache keys, fingerprints, locks."""

import json
import threading
import time

import pytest

from decobench.models.base import TINY_DIR, folder_digest
from decobench.registry import methods
from decobench.run.cache import StageCache
from decobench.run.config import resolve
from decobench.run.identity import run_folder
from decobench.splits import SplitError, load_split


def test_run_folders_differ_whenever_the_numbers_could():
    ce = methods.get("ce")
    folders = set()
    for profile, sets in [("quick", {}), ("embedded", {}), ("quick", {"train.prompt_policy": "without_sensitive"}),
                          ("quick", {"method.adv_weight": "2"}), ("quick", {"eval.feature_timestep": "50"})]:
        cfg, _ = resolve(profile, ce, "ce", sets)
        for regime in ("G", "V+G"):
            folders.add(run_folder(__import__("pathlib").Path("runs"), "A", "ce", regime, cfg, 0))
    assert len(folders) == 10


def test_runs_on_another_base_data_or_device_have_their_own_folder():
    """sd15, real data or CUDA (bf16) never overwrite the embedded CPU run of the same config; the embedded
    default on CPU names its folder as before (the committed results' folders)."""
    from pathlib import Path

    from decobench.run.identity import where_of

    cfg, _ = resolve("embedded", methods.get("ce"), "ce")
    plain = run_folder(Path("runs"), "A", "ce", "G", cfg, 0)
    default = where_of("tiny-synthface", None, "cpu")
    assert run_folder(Path("runs"), "A", "ce", "G", cfg, 0, default) == plain
    others = {run_folder(Path("runs"), "A", "ce", "G", cfg, 0, w) for w in (
        where_of("sd15", None, "cpu"), where_of("tiny-synthface", "/data", "cpu"), where_of("tiny-synthface", None, "cuda"),
        where_of("sd15", "/data", "cuda:1"))}
    assert len(others) == 4 and plain not in others
    assert where_of("sd15", None, "cpu", track="model") == default  # the model track uses no base model


def test_base_digest_changes_when_weights_change_in_place(tmp_path):
    import shutil

    shutil.copytree(TINY_DIR, tmp_path / "m")
    before = folder_digest(tmp_path / "m")
    w = tmp_path / "m" / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    time.sleep(0.01)
    w.write_bytes(bytes(data))
    assert folder_digest(tmp_path / "m") != before


def test_split_with_a_different_data_fingerprint_is_an_error():
    assert load_split("synthfaces-a", "gen_val", fingerprint=None)
    with pytest.raises(SplitError, match="built from different data"):
        load_split("synthfaces-a", "gen_val", fingerprint="0" * 64)


def test_two_runs_sharing_a_cache_compute_a_stage_once(tmp_path):
    cache, calls = StageCache(tmp_path), []

    def worker():
        with cache.stage("s", {"k": 1}) as (folder, cached):
            if not cached:
                calls.append(1)
                time.sleep(0.3)
                (folder / "x").write_text("whole")
        assert (cache.key("s", {"k": 1}) / "x").read_text() == "whole"

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]


def test_classifier_cache_keys_hold_every_id_and_the_device():
    """v1 keyed the classifiers without the G-val ids and without the device."""
    from dataclasses import replace

    from decobench.attacks.base import AttackContext, RealSplit
    from decobench.attacks.checks import small_release
    from decobench.registry import attacks
    from decobench.run.config import PROFILES

    rel = small_release(n=40)
    cls = attacks.get("cls")
    cpu = cls(AttackContext(cfg=PROFILES["quick"].eval, device="cpu"))
    gpu = cls(AttackContext(cfg=PROFILES["quick"].eval, device="cuda"))
    gv = rel.real["gen_val"]
    other = replace(rel, real={**rel.real, "gen_val": RealSplit(gv.images[:-1], gv.labels[:-1], gv.ids[:-1])})
    keys = [cpu.cache_keys(rel), cpu.cache_keys(other), gpu.cache_keys(rel)]
    for i in range(2):  # real and released classifiers alike
        assert len({json.dumps(k[i], sort_keys=True) for k in keys}) == 3
