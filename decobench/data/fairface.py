"""FairFace in its native format: label CSVs ``file,age,gender,race,service_test``."""

from __future__ import annotations

import pandas as pd

from decobench.data.base import DatasetError, FolderDataset
from decobench.data.labels import (AGE_BINS, FAIRFACE_AGE_TO_AGE, FAIRFACE_AGES, FAIRFACE_RACE_TO_RACE,
                                   FAIRFACE_RACES, GENDERS, RACES)
from decobench.registry import datasets

COLUMNS = ["file", "age", "gender", "race", "service_test"]


@datasets.register("fairface")
class FairFace(FolderDataset):
    """FairFace (Kärkkäinen & Joo 2021) from a local folder; 7 races mapped to DECO-Bench's 5."""

    name = "fairface"
    strat_columns = ("race_orig", "gender_orig", "age_orig")
    layout = """  ROOT/
    fairface_label_train.csv   columns: file,age,gender,race,service_test
    fairface_label_val.csv     (same columns; at least one fairface_label_*.csv is needed)
    train/1.jpg ...            image paths in the 'file' column are relative to ROOT
    val/1.jpg ..."""

    def __init__(self, root=None) -> None:
        super().__init__(root)
        csvs = sorted(self.root.glob("fairface_label_*.csv"))
        if not csvs:
            raise DatasetError(f"fairface: no fairface_label_*.csv in {self.root}.\nExpected layout:\n{self.layout}")
        rows, seen = [], set()
        for csv in csvs:
            try:
                df = pd.read_csv(csv, dtype=str, keep_default_na=False)
            except Exception as exc:
                raise DatasetError(f"fairface: {csv} is not a readable CSV: {exc}") from None
            missing = [c for c in COLUMNS[:4] if c not in df.columns]
            if missing:
                raise DatasetError(f"fairface: {csv.name} lacks columns {missing}; found {list(df.columns)}; "
                                   f"expected {COLUMNS}")
            for line, r in zip(range(2, len(df) + 2), df.itertuples(index=False)):
                where = f"{csv.name}:{line} ({r.file})"
                bad = []
                if r.race not in FAIRFACE_RACE_TO_RACE:
                    bad.append(f"race {r.race!r} not one of {FAIRFACE_RACES}")
                if r.gender not in GENDERS:
                    bad.append(f"gender {r.gender!r} not one of {GENDERS}")
                if r.age not in FAIRFACE_AGE_TO_AGE:
                    bad.append(f"age {r.age!r} not one of {FAIRFACE_AGES}")
                if not r.file:
                    bad.append("empty file name")
                elif r.file in seen:
                    bad.append("file listed twice")
                elif not (self.root / r.file).is_file():
                    bad.append(f"image {self.root / r.file} does not exist")
                if bad:
                    self.problems.append(f"{where}: " + "; ".join(bad) + " -> excluded")
                    continue
                seen.add(r.file)
                rows.append({
                    "image_id": r.file, "path": r.file, "identity": -1,
                    "race_orig": r.race, "gender_orig": r.gender, "age_orig": r.age,
                    "race": RACES.index(FAIRFACE_RACE_TO_RACE[r.race]), "gender": GENDERS.index(r.gender),
                    "age": AGE_BINS.index(FAIRFACE_AGE_TO_AGE[r.age]),
                    "service_test": getattr(r, "service_test", ""), "source_csv": csv.name,
                })
        if not rows:
            raise DatasetError(f"fairface: no usable rows in {[c.name for c in csvs]}; problems: {self.problems[:5]}")
        self.records = pd.DataFrame(rows).sort_values("image_id", ignore_index=True)
