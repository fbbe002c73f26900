"""Augmentation of the paper (section 4.2), applied to the ORIGINAL-resolution image.

Training: Gaussian blur with sigma ~ U[0, 3] and JPEG re-encoding with quality ~ U{30..100},
each with its own probability (0.1 by default) and drawn independently, then a random
horizontal flip. Validation (as the authors' code does): the same probabilities with the
midpoints fixed, blur sigma 1.5 and JPEG quality 65, and no flip. Evaluation robustness
sweeps apply one degradation to every image (:func:`degrade`).

Every random number comes from the per-sample generator passed in, always drawn in the same
order whatever branch is taken, so a seed fixes the whole stream.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter


def gaussian_blur(img: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur with standard deviation ``sigma`` pixels (identity for sigma <= 0)."""
    if sigma <= 0:
        return img
    return img.filter(ImageFilter.GaussianBlur(radius=float(sigma)))


def jpeg_reencode(img: Image.Image, quality: int) -> Image.Image:
    """Encode as baseline JPEG at ``quality`` (1..100, 4:2:0 like libjpeg's default) and decode."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def degrade(
    img: Image.Image, blur_sigma: float | None = None, jpeg_quality: int | None = None
) -> Image.Image:
    """Blur then JPEG, each only when given: the robustness sweep's perturbation."""
    if blur_sigma is not None:
        img = gaussian_blur(img, blur_sigma)
    if jpeg_quality is not None:
        img = jpeg_reencode(img, jpeg_quality)
    return img


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; the defaults are the paper's."""

    blur_prob: float = 0.1
    blur_sigma_min: float = 0.0
    blur_sigma_max: float = 3.0
    jpeg_prob: float = 0.1
    jpeg_quality_min: int = 30
    jpeg_quality_max: int = 100
    hflip: bool = True

    def __post_init__(self) -> None:
        for name in ("blur_prob", "jpeg_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 1 <= self.jpeg_quality_min <= self.jpeg_quality_max <= 100:
            raise ValueError("JPEG quality range must satisfy 1 <= min <= max <= 100")
        if not 0.0 <= self.blur_sigma_min <= self.blur_sigma_max:
            raise ValueError("blur sigma range must satisfy 0 <= min <= max")

    def to_dict(self) -> dict[str, float | int | bool]:
        """Plain values for the resolved training configuration."""
        return asdict(self)


class TrainAugment:
    """Random blur / JPEG / flip for training (picklable, for worker processes)."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        c = self.config
        # Fixed draw order: blur?, sigma, jpeg?, quality, flip?.
        do_blur = rng.random() < c.blur_prob
        sigma = rng.uniform(c.blur_sigma_min, c.blur_sigma_max)
        do_jpeg = rng.random() < c.jpeg_prob
        quality = int(rng.integers(c.jpeg_quality_min, c.jpeg_quality_max + 1))
        do_flip = rng.random() < 0.5
        if do_blur:
            img = gaussian_blur(img, sigma)
        if do_jpeg:
            img = jpeg_reencode(img, quality)
        if c.hflip and do_flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img


class ValidationAugment:
    """The authors' validation view: fixed blur 1.5 / JPEG 65 with the training probabilities."""

    def __init__(
        self,
        config: AugmentConfig | None = None,
        blur_sigma: float | None = None,
        jpeg_quality: int | None = None,
    ) -> None:
        c = config or AugmentConfig()
        self.blur_prob = c.blur_prob
        self.jpeg_prob = c.jpeg_prob
        self.blur_sigma = (
            blur_sigma if blur_sigma is not None else (c.blur_sigma_min + c.blur_sigma_max) / 2
        )
        self.jpeg_quality = (
            jpeg_quality
            if jpeg_quality is not None
            else (c.jpeg_quality_min + c.jpeg_quality_max) // 2
        )

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        do_blur = rng.random() < self.blur_prob
        do_jpeg = rng.random() < self.jpeg_prob
        if do_blur:
            img = gaussian_blur(img, self.blur_sigma)
        if do_jpeg:
            img = jpeg_reencode(img, self.jpeg_quality)
        return img


class Perturb:
    """Applies one fixed :func:`degrade` to every image (robustness evaluation)."""

    def __init__(self, blur_sigma: float | None = None, jpeg_quality: int | None = None) -> None:
        self.blur_sigma = blur_sigma
        self.jpeg_quality = jpeg_quality

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        return degrade(img, self.blur_sigma, self.jpeg_quality)


@dataclass(frozen=True)
class DebiasConfig:
    """Format debiasing: the same random crop and re-encode for every image of either class."""

    crop_min: float = 0.6  # side of the random crop as a fraction of each image side, U[min, 1]
    jpeg_prob: float = 1.0  # else a lossless (PNG) round trip, i.e. the pixels unchanged
    jpeg_quality_min: int = 65
    jpeg_quality_max: int = 100

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_min <= 1.0:
            raise ValueError("crop_min must be in (0, 1]")
        if not 0.0 <= self.jpeg_prob <= 1.0:
            raise ValueError("jpeg_prob must be in [0, 1]")
        if not 1 <= self.jpeg_quality_min <= self.jpeg_quality_max <= 100:
            raise ValueError("JPEG quality range must satisfy 1 <= min <= max <= 100")


def random_crop(img: Image.Image, fraction: float, rng: np.random.Generator) -> Image.Image:
    """A crop of ``fraction`` of each side at a position drawn from ``rng`` (two draws)."""
    w, h = img.size
    cw, ch = max(1, round(w * fraction)), max(1, round(h * fraction))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return img.crop((x0, y0, x0 + cw, y0 + ch))


class DebiasAugment:
    """Random crop, then JPEG at a random quality (or a lossless round trip), then the paper's
    blur/flip augmentation: applied alike to real and synthetic images, so neither the
    container, the JPEG history nor the image size can tell the classes apart.

    The crop comes first so the new JPEG's 8x8 grid is aligned with the final image.
    """

    def __init__(self, config: DebiasConfig | None = None, then: TrainAugment | None = None):
        self.config = config or DebiasConfig()
        self.then = then

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        c = self.config
        # Fixed draw order: fraction, x0, y0, jpeg?, quality, then the rest.
        fraction = rng.uniform(c.crop_min, 1.0)
        img = random_crop(img, fraction, rng)
        do_jpeg = rng.random() < c.jpeg_prob
        quality = int(rng.integers(c.jpeg_quality_min, c.jpeg_quality_max + 1))
        if do_jpeg:
            img = jpeg_reencode(img, quality)
        return self.then(img, rng) if self.then is not None else img
