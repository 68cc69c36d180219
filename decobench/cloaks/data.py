"""The cloak protocol's people: identities with crafting and test photos, and distractors.

Embedded (Privacy-Commons style, on SynthFaces): the FR zoo's 500 *enrolled* identities of
``synthfaces-fr``, which no zoo model trained on, their first 15 photos (10 craft the mask, 5 are
tested), and the zoo's 10,500 distractor images (700 other people, 15 photos each); 64 px, as the zoo
reads them.

Real data (``--data-root DIR``), a Privacy-Commons / MegaFace-style layout::

    DIR/identities/<person>/<image>.{jpg,png}    # >= 15 aligned face photos per person: the first 10 (by
                                                  # file name) craft the mask, the next 5 are tested
    DIR/distractors.txt                           # one image path per line (relative to DIR), other people

Every image is read as RGB and resized to ``size`` x ``size``; a person with too few photos, a missing
list or an unreadable image is one clear error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decobench.data.base import DatasetError

CRAFT, TEST = 10, 5
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class CloakData:
    name: str
    identities: list[str]
    craft: np.ndarray          # uint8 [I, 10, H, W, 3]
    test: np.ndarray           # uint8 [I, 5, H, W, 3]
    distractors: np.ndarray    # uint8 [D, H, W, 3]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.craft, self.test, self.distractors):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\n".join(self.identities).encode())
        return h.hexdigest()[:16]

    def subset(self, n_identities: int | None, n_distractors: int | None) -> "CloakData":
        i = slice(None) if n_identities is None else slice(0, n_identities)
        d = slice(None) if n_distractors is None else slice(0, n_distractors)
        return CloakData(self.name, self.identities[i], self.craft[i], self.test[i], self.distractors[d])


def synthfaces(n_identities: int = 500, n_distractors: int = 10_500) -> CloakData:
    """The embedded people: zoo-enrolled identities (never trained on) and the zoo's distractors."""
    from decobench.models.fr.train import DISTRACTOR_IMAGES, FRData

    if not 1 <= n_identities <= 500 or not 1 <= n_distractors <= 700 * DISTRACTOR_IMAGES:
        raise DatasetError(f"synthfaces-fr holds 500 protected identities and {700 * DISTRACTOR_IMAGES} distractor "
                           f"images; asked for {n_identities} and {n_distractors}")
    data = FRData(64)
    per = CRAFT + TEST
    rows = data.rows("enrolled", per)[: n_identities * per]
    imgs = data.images(rows).reshape(n_identities, per, 64, 64, 3)
    ids = data.labels["identity"].to_numpy()[rows[::per]]
    distractors = data.images(data.rows("distractors", DISTRACTOR_IMAGES)[:n_distractors])
    return CloakData("synthfaces-fr", [f"id{int(i)}" for i in ids], imgs[:, :CRAFT], imgs[:, CRAFT:], distractors)


def _read(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC))
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read image {path}: {exc}; replace or remove it") from None


def from_folder(root: str | Path, size: int = 112) -> CloakData:
    root = Path(root)
    people_dir, listing = root / "identities", root / "distractors.txt"
    if not people_dir.is_dir():
        raise DatasetError(f"{root} has no identities/ folder; the cloak layout is identities/<person>/<images> "
                           f"plus distractors.txt (README, Privacy cloaks)")
    if not listing.is_file():
        raise DatasetError(f"{listing} is missing: list the distractor images (other people), one path per line")
    people = sorted(p for p in people_dir.iterdir() if p.is_dir())
    if not people:
        raise DatasetError(f"{people_dir} holds no person folders")
    craft, test = [], []
    for p in people:
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in EXTENSIONS)
        if len(files) < CRAFT + TEST:
            raise DatasetError(f"{p} has {len(files)} images; each person needs {CRAFT + TEST} "
                               f"({CRAFT} craft the mask, {TEST} are tested)")
        imgs = np.stack([_read(f, size) for f in files[:CRAFT + TEST]])
        craft.append(imgs[:CRAFT])
        test.append(imgs[CRAFT:])
    lines = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise DatasetError(f"{listing} lists no images")
    missing = [ln for ln in lines if not (root / ln).is_file()]
    if missing:
        raise DatasetError(f"{listing}: {len(missing)} listed images do not exist, e.g. {missing[0]}")
    distractors = np.stack([_read(root / ln, size) for ln in lines])
    return CloakData(root.name, [p.name for p in people], np.stack(craft), np.stack(test), distractors)
