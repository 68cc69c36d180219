"""DECO-Bench A.2's front-face protocol: keep only frontal faces in every split, for training and evaluation.

SynthFaces knows each face's yaw: its ``profile`` flag (|yaw| > 35°) decides. A real dataset has no pose
label, so, as in the paper, dlib's frontal face detector (HOG + linear SVM) decides: a photo is frontal when
the detector finds a face in it (upsampled once, at ``DETECT_SIZE`` px). dlib is the optional ``dlib``
extra; without it a real dataset's front-face run is an error that says what to install.
"""

from __future__ import annotations

import json

import numpy as np

from decobench.data.base import DatasetError

DETECT_SIZE = 160  # px: FairFace's aligned crops hold the face in the middle ~60 %


def frontal_by_detector(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] -> bool [N]: dlib's frontal face detector finds at least one face."""
    try:
        import dlib
    except ImportError as exc:
        raise DatasetError("faces=frontal on a real dataset needs dlib's frontal face detector (DECO-Bench A.2): "
                           "pip install 'decobench[dlib]', or run on SynthFaces, whose profile flag decides") from exc
    detector = dlib.get_frontal_face_detector()
    return np.array([len(detector(np.ascontiguousarray(im), 1)) > 0 for im in images], dtype=bool)


def frontal_ids(ds, ids: list[str], cache=None) -> list[str]:
    """The frontal faces among ``ids``, in their order (SynthFaces: the profile flag; else dlib, cached)."""
    if not ids:
        return []
    if "profile" in ds.records:
        flags = ds.records["profile"].to_numpy()[ds.index_of(ids)] == 0
        return [i for i, keep in zip(ids, flags) if keep]
    if cache is None:
        return _detected(ds, ids)
    inputs = {"dataset": ds.name, "fingerprint": ds.fingerprint(), "ids": ids, "detector": "dlib-frontal",
              "size": DETECT_SIZE}
    with cache.stage("frontal", inputs) as (folder, cached):
        if not cached:
            (folder / "frontal.json").write_text(json.dumps(_detected(ds, ids)))
    return json.loads((cache.key("frontal", inputs) / "frontal.json").read_text())


def _detected(ds, ids: list[str], batch: int = 512) -> list[str]:
    """The ids in which dlib's detector finds a face, in their order."""
    flags = np.concatenate([frontal_by_detector(ds.load_images(ids[i:i + batch], DETECT_SIZE))
                            for i in range(0, len(ids), batch)])
    return [i for i, keep in zip(ids, flags) if keep]
