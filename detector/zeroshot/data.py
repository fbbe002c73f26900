"""Real photos for fitting: manifests, folders, and the processing uploads see.

A manifest is a CSV with at least ``path`` and ``label`` (0 real, 1 generated); ``split``,
``family`` and ``source`` are used when present; ``path`` is relative to the manifest's folder.
A folder is read as real photos of one source (its name).

:func:`upload_variant` applies what happens to a photo on its way to a platform: a crop, a
down- or upscale with bicubic, bilinear or Lanczos resampling, JPEG at quality 50-100 and
sometimes a second JPEG save (a re-upload). Fitting on such variants keeps processed real
photos from being flagged for their processing alone.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "IMAGE_SUFFIXES",
    "PROCESSINGS",
    "Row",
    "load_rgb",
    "process",
    "read_rows",
    "split_holdout",
    "upload_variant",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_RESAMPLING = (Image.Resampling.BICUBIC, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class Row:
    """One image of a manifest or folder."""

    path: Path
    label: int
    split: str = ""
    family: str = ""
    source: str = ""


def read_rows(src: str | Path) -> list[Row]:
    """Rows of a manifest CSV, or a folder's images (label 0, source = folder name), sorted."""
    src = Path(src)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return [Row(p, 0, "", "photo", src.name) for p in files]
    with src.open(newline="") as fh:
        rows = [
            Row(
                src.parent / r["path"],
                int(r["label"]),
                r.get("split", "") or "",
                r.get("family", "") or "",
                r.get("source", "") or "",
            )
            for r in csv.DictReader(fh)
        ]
    return rows


def split_holdout(rows: list[Row], every: int) -> tuple[list[Row], list[Row]]:
    """Every ``every``-th image of each source (in path order) held out; ``every <= 0``: none."""
    if every <= 0:
        return list(rows), []
    fit: list[Row] = []
    held: list[Row] = []
    by_source: dict[str, list[Row]] = {}
    for row in rows:
        by_source.setdefault(row.source, []).append(row)
    for group in by_source.values():
        for i, row in enumerate(sorted(group, key=lambda r: str(r.path))):
            (held if i % every == every - 1 else fit).append(row)
    return fit, held


def load_rgb(path: Path) -> Image.Image:
    """The image as RGB (first frame)."""
    with Image.open(path) as im:
        return im.convert("RGB")


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def upload_variant(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A randomly processed copy: crop, resize, JPEG 50-100, maybe a second JPEG save.

    Each step is drawn independently (crop 50%, resize 70% with scale in [0.5, 2],
    JPEG 80%, re-save 30% of the JPEGs); the random numbers are drawn in a fixed order.
    """
    u = rng.random(4)
    frac, scale = rng.uniform(0.6, 1.0), float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    method = _RESAMPLING[int(rng.integers(len(_RESAMPLING)))]
    q1, q2 = int(rng.integers(50, 101)), int(rng.integers(50, 101))
    fx, fy = rng.random(2)
    w, h = img.size
    if u[0] < 0.5 and min(w, h) >= 64:
        cw, ch = max(32, int(w * frac)), max(32, int(h * frac))
        x0, y0 = int(fx * (w - cw)), int(fy * (h - ch))
        img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if u[1] < 0.7:
        size = (max(16, round(img.width * scale)), max(16, round(img.height * scale)))
        img = img.resize(size, method)
    if u[2] < 0.8:
        img = _jpeg(img, q1)
        if u[3] < 0.3:
            img = _jpeg(img, q2)
    return img


PROCESSINGS = ("none", "jpeg90", "jpeg75", "half", "double")


def process(img: Image.Image, name: str) -> Image.Image:
    """The evaluation's fixed processings: JPEG q90/q75, 0.5x / 2x bicubic resize."""
    if name == "none":
        return img
    if name.startswith("jpeg"):
        return _jpeg(img, int(name[4:]))
    factor = {"half": 0.5, "double": 2.0}[name]
    size = (max(16, round(img.width * factor)), max(16, round(img.height * factor)))
    return img.resize(size, Image.Resampling.BICUBIC)
