"""Open a registered dataset by name, turning registry and reading failures into clear errors."""

from __future__ import annotations

from decobench.data.base import DatasetError, FaceDataset
from decobench.registry import datasets


def open_dataset(name: str, root=None) -> FaceDataset:
    factory = datasets.get(name)  # UnknownNameError lists close names
    ds = factory(root=root)
    if not isinstance(ds, FaceDataset):
        raise DatasetError(f"dataset plugin {name!r} returned {type(ds).__name__}, not a FaceDataset")
    return ds
