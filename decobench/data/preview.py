"""A contact sheet of dataset samples with their (mapped) labels written under each."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from decobench.data.labels import CLASSES
from decobench.io import atomic_write_bytes


def preview_grid(dataset, n: int = 32, columns: int = 8, tile: int = 128, seed: int = 0,
                 image_ids=None) -> Image.Image:
    rec = dataset.records
    if image_ids is None:
        rng = np.random.default_rng(seed)
        image_ids = rec["image_id"].to_numpy()[rng.permutation(len(rec))[:n]].tolist()
    images = dataset.load_images(image_ids, size=tile)
    rows = rec.iloc[dataset.index_of(image_ids)]
    font = ImageFont.load_default()
    text_h = 12 * (len(dataset.attributes) + 1) + 4
    n_rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * tile, n_rows * (tile + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (img, (_, r)) in enumerate(zip(images, rows.iterrows())):
        x, y = (k % columns) * tile, (k // columns) * (tile + text_h)
        sheet.paste(Image.fromarray(img), (x, y))
        lines = [f"{a}: {CLASSES[a][int(r[a])]}" for a in dataset.attributes]
        if "race_orig" in r and dataset.attributes and "race" in dataset.attributes:
            lines.append(f"orig: {r['race_orig']}")
        for j, line in enumerate(lines):
            draw.text((x + 3, y + tile + 2 + 12 * j), line[:22], fill="black", font=font)
    return sheet


def save_png(img: Image.Image, path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
