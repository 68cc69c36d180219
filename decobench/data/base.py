"""What every dataset provides: a label table (one row per image) and a way to load its pixels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from decobench.data.labels import CLASSES

MAPPED = ("race", "gender", "age")


class DatasetError(Exception):
    """A dataset cannot be read as asked; the message says what is wrong and how to fix it."""


class FaceDataset:
    """A labelled collection of face images.

    Subclasses fill ``records`` with one row per image: ``image_id`` (unique, stable), ``identity``
    (-1 where unknown), the mapped labels ``race``/``gender``/``age`` as integer codes into
    ``decobench.data.labels`` (-1 where the dataset has no such label) and the original labels in
    ``*_orig`` columns. Rows that cannot be labelled without guessing are excluded and described in
    ``problems``.
    """

    name: str = "?"
    #: original-label columns the splits stratify on
    strat_columns: tuple[str, ...] = ()
    #: the expected folder layout, shown when the root is missing or wrong
    layout: str = ""

    def __init__(self) -> None:
        self.records: pd.DataFrame = pd.DataFrame()
        self.problems: list[str] = []

    # -- labels ----------------------------------------------------------------------------------
    @property
    def attributes(self) -> list[str]:
        return [a for a in MAPPED if a in self.records and (self.records[a] >= 0).any()]

    @property
    def has_identities(self) -> bool:
        return "identity" in self.records and bool((self.records["identity"] >= 0).all())

    def label_counts(self) -> dict[str, dict[str, int]]:
        """Images per class of every mapped attribute, after the cross-label mapping."""
        out = {}
        for a in self.attributes:
            vc = self.records[a].value_counts()
            out[a] = {cls: int(vc.get(i, 0)) for i, cls in enumerate(CLASSES[a])}
        return out

    def fingerprint(self) -> str:
        """sha256 of the label table: splits record it and ``splits verify`` compares it."""
        cols = ["image_id", "identity", *self.strat_columns]
        table = self.records[cols].to_csv(index=False, lineterminator="\n").encode()
        return hashlib.sha256(table).hexdigest()

    # -- pixels ----------------------------------------------------------------------------------
    def load_images(self, image_ids, size: int = 64) -> np.ndarray:
        """uint8 array [N, size, size, 3] for the given image ids (RGB, resized square)."""
        raise NotImplementedError

    def index_of(self, image_ids) -> np.ndarray:
        pos = pd.Series(np.arange(len(self.records)), index=self.records["image_id"])
        missing = [i for i in image_ids if i not in pos.index]
        if missing:
            raise DatasetError(f"{self.name}: {len(missing)} image ids not in the dataset, e.g. {missing[:3]}")
        return pos.loc[list(image_ids)].to_numpy()


class FolderDataset(FaceDataset):
    """A dataset of image files under a root folder; ``records['path']`` is relative to the root."""

    def __init__(self, root: str | Path | None) -> None:
        super().__init__()
        if root is None:
            raise DatasetError(f"{self.name} needs --root DIR pointing at the dataset folder.\n"
                               f"Expected layout:\n{self.layout}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: root {self.root} is not a folder.\nExpected layout:\n{self.layout}")

    def require(self, rel: str) -> Path:
        p = self.root / rel
        if not p.exists():
            raise DatasetError(f"{self.name}: {p} is missing.\nExpected layout under {self.root}:\n{self.layout}")
        return p

    def load_images(self, image_ids, size: int = 64) -> np.ndarray:
        rows = self.records.iloc[self.index_of(image_ids)]
        out = np.empty((len(rows), size, size, 3), np.uint8)
        for k, rel in enumerate(rows["path"]):
            out[k] = read_image(self.root / rel, size)
        return out

    def check_images(self, progress=None) -> list[str]:
        """Try to decode every image; returns one problem line per unreadable file."""
        bad = []
        paths = self.records["path"].tolist()
        for rel in (progress(paths) if progress else paths):
            try:
                with Image.open(self.root / rel) as im:
                    im.verify()
            except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
                bad.append(f"unreadable image {rel}: {type(exc).__name__}: {exc}")
        return bad


def read_image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"image file {path} cannot be decoded ({type(exc).__name__}: {exc}); "
                           f"replace it or remove its row from the label file") from None
