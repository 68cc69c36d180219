"""Tiny fixtures in the native formats of FairFace, UTKFace and CelebA (no real data needed)."""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are for people, not for test logs
if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: one thread per worker (and its subprocesses), or the
    os.environ["OMP_NUM_THREADS"] = "1"      # workers fight over the cores and each runs several times slower
    import torch

    torch.set_num_threads(1)

import numpy as np
import pytest
from PIL import Image

from decobench.data.labels import FAIRFACE_AGES, FAIRFACE_RACES


def _jpg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path, quality=90)


@pytest.fixture
def fairface_root(tmp_path):
    root = tmp_path / "fairface"
    rng = np.random.default_rng(0)
    lines = ["file,age,gender,race,service_test"]
    for i in range(1, 211):
        lines.append(f"train/{i}.jpg,{FAIRFACE_AGES[rng.integers(9)]},{['Male', 'Female'][i % 2]},"
                     f"{FAIRFACE_RACES[i % 7]},True")
        _jpg(root / f"train/{i}.jpg", i)
    lines.append("train/999.jpg,20-29,Male,Martian,True")   # malformed label
    lines.append("train/998.jpg,20-29,Male,White,True")     # image missing
    (root / "fairface_label_train.csv").write_text("\n".join(lines) + "\n")
    val = ["file,age,gender,race,service_test", "val/1.jpg,3-9,Female,East Asian,False"]
    _jpg(root / "val/1.jpg", 1000)
    (root / "fairface_label_val.csv").write_text("\n".join(val) + "\n")
    return root


@pytest.fixture
def utkface_root(tmp_path):
    root = tmp_path / "utk" / "UTKFace"
    rng = np.random.default_rng(1)
    for i in range(150):
        age, g, r = int(rng.integers(0, 100)), i % 2, i % 5
        _jpg(root / f"{age}_{g}_{r}_2017011617452{i:04d}.jpg.chip.jpg", i)
    # real UTKFace has a few files lacking a field; they must be reported, not guessed
    _jpg(root / "39_1_20170116174525125.jpg.chip.jpg", 7)
    _jpg(root / "61_3_20170109150557335.jpg.chip.jpg", 8)
    return tmp_path / "utk"


@pytest.fixture
def celeba_root(tmp_path):
    root = tmp_path / "celeba"
    names = ["5_o_Clock_Shadow", "Male", "Young", "Smiling"]
    rows, ident, part = [], [], []
    rng = np.random.default_rng(2)
    for i in range(1, 121):
        f = f"{i:06d}.jpg"
        person = (i - 1) // 4
        male = "1" if person % 2 else "-1"
        vals = [str(rng.choice([-1, 1])), male, str(rng.choice([-1, 1])), str(rng.choice([-1, 1]))]
        rows.append(f"{f} " + " ".join(vals))
        ident.append(f"{f} {person}")
        part.append(f"{f} {0 if i < 90 else 1}")
        _jpg(root / "img_align_celeba" / f, i)
    rows.append("000999.jpg 1 1")  # wrong number of values
    (root / "list_attr_celeba.txt").write_text(f"{len(rows)}\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n")
    (root / "identity_CelebA.txt").write_text("\n".join(ident) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(part) + "\n")
    return root
