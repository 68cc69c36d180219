"""UTKFace in its native format: labels in file names ``[age]_[gender]_[race]_[date&time].jpg.chip.jpg``."""

from __future__ import annotations

import pandas as pd

from decobench.data.base import DatasetError, FolderDataset
from decobench.data.labels import UTK_GENDERS, UTK_RACES, age_years_to_bin
from decobench.registry import datasets


def parse_utk_name(name: str) -> tuple[int, int, int]:
    """(age, gender, race) from a UTKFace file name; ValueError naming the bad field otherwise."""
    stem = name
    for suffix in (".chip.jpg", ".jpg"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    parts = stem.split("_")
    if len(parts) != 4:
        raise ValueError(f"expected 4 '_'-separated fields [age]_[gender]_[race]_[datetime], found {len(parts)}")
    age_s, gender_s, race_s, _ = parts
    if not age_s.isdigit() or not 0 <= int(age_s) <= 116:
        raise ValueError(f"age {age_s!r} is not a whole number 0-116")
    if gender_s not in ("0", "1"):
        raise ValueError(f"gender {gender_s!r} is not 0 (male) or 1 (female)")
    if race_s not in ("0", "1", "2", "3", "4"):
        raise ValueError(f"race {race_s!r} is not 0-4")
    return int(age_s), int(gender_s), int(race_s)


@datasets.register("utkface")
class UTKFace(FolderDataset):
    """UTKFace (Zhang et al. 2017) from a local folder; ages 0-116 mapped to FairFace's bins."""

    name = "utkface"
    strat_columns = ("race_orig", "gender_orig", "age_orig")
    layout = """  ROOT/  (files may sit in sub-folders, e.g. UTKFace/ or crop_part1/)
    25_0_2_20170116174525125.jpg.chip.jpg    [age]_[gender]_[race]_[date&time].jpg.chip.jpg
    ...                                      age 0-116, gender 0 male / 1 female, race 0-4
                                             (White, Black, Asian, Indian, Others)"""

    def __init__(self, root=None) -> None:
        super().__init__(root)
        files = sorted(p for p in self.root.rglob("*.jpg") if p.is_file())
        if not files:
            raise DatasetError(f"utkface: no .jpg files under {self.root}.\nExpected layout:\n{self.layout}")
        rows = []
        for p in files:
            rel = p.relative_to(self.root).as_posix()
            try:
                age, gender, race = parse_utk_name(p.name)
            except ValueError as exc:  # a few real files lack a field: report and exclude, never guess
                self.problems.append(f"{rel}: {exc} -> excluded")
                continue
            rows.append({"image_id": rel, "path": rel, "identity": -1,
                         "race_orig": UTK_RACES[race], "gender_orig": UTK_GENDERS[gender], "age_orig": str(age),
                         "race": race, "gender": gender, "age": age_years_to_bin(age), "age_years": age})
        if not rows:
            raise DatasetError(f"utkface: none of {len(files)} files under {self.root} has a parsable name")
        self.records = pd.DataFrame(rows)
