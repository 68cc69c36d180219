"""CelebA in its native format: ``list_attr_celeba.txt``, ``identity_CelebA.txt``, ``list_eval_partition.txt``."""

from __future__ import annotations

import pandas as pd

from decobench.data.base import DatasetError, FolderDataset
from decobench.registry import datasets


@datasets.register("celeba")
class CelebA(FolderDataset):
    """CelebA (Liu et al. 2015) from a local folder: 40 binary attributes and identities; gender mapped."""

    name = "celeba"
    layout = """  ROOT/
    list_attr_celeba.txt       line 1: count; line 2: 40 attribute names; then 'file v1 .. v40' (v = 1/-1)
    identity_CelebA.txt        'file identity'
    list_eval_partition.txt    'file 0|1|2'
    img_align_celeba/000001.jpg ..."""

    def __init__(self, root=None) -> None:
        super().__init__(root)
        attr_path = self.require("list_attr_celeba.txt")
        ident_path = self.require("identity_CelebA.txt")
        part_path = self.require("list_eval_partition.txt")
        img_dir = self.require("img_align_celeba")
        lines = attr_path.read_text().splitlines()
        if len(lines) < 2:
            raise DatasetError(f"celeba: {attr_path} has no header (count line and attribute-name line)")
        names = lines[1].split()
        if "Male" not in names:
            raise DatasetError(f"celeba: {attr_path} line 2 must name the 40 attributes incl. 'Male'; got {names[:5]}...")
        ident = _two_column(ident_path, "identity_CelebA.txt")
        part = _two_column(part_path, "list_eval_partition.txt")
        rows = []
        for ln, line in enumerate(lines[2:], start=3):
            f = line.split()
            if not f:
                continue
            where = f"list_attr_celeba.txt:{ln} ({f[0]})"
            if len(f) != len(names) + 1 or any(v not in ("1", "-1") for v in f[1:]):
                self.problems.append(f"{where}: expected {len(names)} values of 1/-1 -> excluded")
                continue
            if f[0] not in ident or not ident[f[0]].isdigit():
                self.problems.append(f"{where}: no integer identity in identity_CelebA.txt -> excluded")
                continue
            if not (img_dir / f[0]).is_file():
                self.problems.append(f"{where}: image {img_dir / f[0]} does not exist -> excluded")
                continue
            vals = dict(zip(names, f[1:]))
            row = {"image_id": f[0], "path": f"img_align_celeba/{f[0]}", "identity": int(ident[f[0]]),
                   "race": -1, "age": -1, "gender": 0 if vals["Male"] == "1" else 1,
                   "celeba_partition": part.get(f[0], "")}
            row.update({f"{a}_orig": int(v == "1") for a, v in vals.items()})
            rows.append(row)
        if not rows:
            raise DatasetError(f"celeba: no usable rows in {attr_path}; problems: {self.problems[:5]}")
        self.records = pd.DataFrame(rows)
        self.strat_columns = tuple(f"{a}_orig" for a in names)


def _two_column(path, label) -> dict[str, str]:
    out = {}
    for ln, line in enumerate(path.read_text().splitlines(), start=1):
        f = line.split()
        if not f:
            continue
        if len(f) != 2:
            raise DatasetError(f"celeba: {label}:{ln} should be 'file value', got {line!r}")
        out[f[0]] = f[1]
    return out
