"""Everyday processing of uploads, as augmentation: what a phone, a website or a messenger does
to a photo before it reaches a moderation queue.

A forensic model that never saw a resized, upscaled or recompressed real photo takes the
resampling traces for a generator's (a small, upscaled real face crop looked synthetic to every
model before this). :func:`everyday_processing` draws one processing history:

* downscale (p ``downscale_prob``) by a factor in ``[0.35, 0.9]``;
* upscale (p ``upscale_prob``, given per class by the caller) by ``[1.25, 2.5]``, after a crop
  to at most ``UPSCALE_SOURCE`` px so the image stays small; a share of the upscales are
  *small crops* (profile pictures, avatars: 64-160 px cut from the image, then enlarged);
* JPEG (p ``jpeg_prob``) at quality ``[50, 100]``, else left as it is;

each resampling with a filter drawn from what image libraries and browsers use (bicubic,
bilinear, Lanczos, box, Hamming). :func:`small_upscaled_crop` is the evaluation's fixed
version of a small crop (a "profile picture" made from a people photo).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from detector.training.augment import jpeg_reencode

__all__ = ["RESAMPLERS", "ProcessingConfig", "everyday_processing", "small_upscaled_crop"]

RESAMPLERS: tuple[Image.Resampling, ...] = (
    Image.Resampling.BICUBIC,
    Image.Resampling.BILINEAR,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,
    Image.Resampling.HAMMING,
)
UPSCALE_SOURCE = 320
"""An image is cropped to at most this side before it is upscaled."""


@dataclass(frozen=True)
class ProcessingConfig:
    """Probabilities of each processing step (upscale: per class, see the module docstring)."""

    downscale_prob: float = 0.3
    upscale_prob: float = 0.3
    small_crop_share: float = 0.5
    jpeg_prob: float = 0.6


def _resize(img: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    return img.resize(size, RESAMPLERS[int(rng.integers(len(RESAMPLERS)))])


def _crop(img: Image.Image, side: int, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    cw, ch = min(side, w), min(side, h)
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def everyday_processing(
    img: Image.Image, rng: np.random.Generator, config: ProcessingConfig
) -> Image.Image:
    """One random processing history of ``img`` (RGB) -> RGB image."""
    if rng.random() < config.downscale_prob:
        img = _resize(img, float(rng.uniform(0.35, 0.9)), rng)
    if rng.random() < config.upscale_prob:
        if rng.random() < config.small_crop_share:
            img = _crop(img, int(rng.integers(64, 161)), rng)
            factor = float(rng.uniform(1.5, 3.0))
        else:
            img = _crop(img, UPSCALE_SOURCE, rng)
            factor = float(rng.uniform(1.25, 2.5))
        img = _resize(img, factor, rng)
    if rng.random() < config.jpeg_prob:
        img = jpeg_reencode(img, int(rng.integers(50, 101)))
    return img


def small_upscaled_crop(img: Image.Image, seed: int) -> Image.Image:
    """A profile-picture-like view of a people photo: a square of 25-45% of the short side
    around the upper centre (where portraits put the face), shrunk to 64-112 px, enlarged to
    200-256 px with a library resampler, saved as JPEG q85-95. Same ``seed``, same image."""
    rng = np.random.default_rng(seed)
    w, h = img.size
    side = max(16, int(min(w, h) * rng.uniform(0.25, 0.45)))
    cx, cy = w // 2, int(h * 0.4)
    x0 = max(0, min(cx - side // 2, w - side))
    y0 = max(0, min(cy - side // 2, h - side))
    crop = img.crop((x0, y0, x0 + side, y0 + side))
    small = int(rng.integers(64, 113))
    crop = crop.resize((small, small), RESAMPLERS[int(rng.integers(len(RESAMPLERS)))])
    large = int(rng.integers(200, 257))
    crop = crop.resize((large, large), RESAMPLERS[int(rng.integers(3))])
    return jpeg_reencode(crop, int(rng.integers(85, 96)))
