"""Image decoding: bytes, paths or PIL images -> RGB ``uint8 [3, H, W]`` tensors, with limits.

Thread-safe and CPU-only: it reads no global PIL setting it would have to change
(``Image.MAX_IMAGE_PIXELS`` is left alone; our own :class:`ImageLimits` are checked from the
header before any pixel is decoded) and touches no torch state.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from detector.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

__all__ = ["DEFAULT_FORMATS", "DecodedImage", "ImageInput", "ImageLimits", "decode_image"]

DEFAULT_FORMATS: frozenset[str] = frozenset(
    {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "AVIF", "HEIF"}
)

ImageInput = bytes | Path | Image.Image


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Limits checked before decoding; defaults suit user uploads up to 8K and beyond."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_side: int = 16384
    min_side: int = 32
    formats: frozenset[str] = field(default=DEFAULT_FORMATS)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """A decoded image.

    Attributes:
        pixels: ``uint8 [3, H, W]`` RGB, EXIF orientation applied, first frame of an animation.
        width, height: size of ``pixels`` (after EXIF transposition).
        format: PIL format name ("JPEG", "PNG", ...), "" for an in-memory PIL image without one.
        mode: the original PIL mode ("RGB", "L", "P", "RGBA", "CMYK", "I;16", ...).
        sha256: hex digest of the input bytes, "" when given a PIL image.
    """

    pixels: torch.Tensor
    width: int
    height: int
    format: str
    mode: str
    sha256: str


def decode_image(data: ImageInput, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Decode ``data`` to RGB.

    Raises:
        ImageDecodeError: corrupt, truncated or not an image.
        ImageTooLargeError: more than ``max_bytes``, ``max_pixels`` or ``max_side``, or a
            decompression bomb refused by PIL.
        UnsupportedImageError: a format outside ``limits.formats`` or a side below ``min_side``.
    """
    if isinstance(data, Image.Image):
        return _decode_pil(data, limits, fmt=data.format or "", sha256="", check_format=False)
    if isinstance(data, Path):
        data = _read_file(data, limits)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"cannot decode an object of type {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > limits.max_bytes:
        raise ImageTooLargeError(f"{len(raw)} bytes exceeds the limit of {limits.max_bytes}")
    if not raw:
        raise ImageDecodeError("empty input")
    digest = hashlib.sha256(raw).hexdigest()
    try:
        image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not a decodable image (unidentified format)") from exc
    except Exception as exc:  # a hostile file must give a typed error, whatever PIL raises
        raise ImageDecodeError(f"not a decodable image ({type(exc).__name__}: {exc})") from exc
    with image:
        return _decode_pil(image, limits, fmt=image.format or "", sha256=digest, check_format=True)


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ImageTooLargeError(
                f"{path}: {size} bytes exceeds the limit of {limits.max_bytes}"
            )
        return path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read {path}: {exc}") from exc


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"invalid image size {width}x{height}")
    if max(width, height) > limits.max_side:
        raise ImageTooLargeError(f"{width}x{height}: a side exceeds {limits.max_side} px")
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(f"{width}x{height}: more than {limits.max_pixels} pixels")
    if min(width, height) < limits.min_side:
        raise UnsupportedImageError(f"{width}x{height}: a side is below {limits.min_side} px")


def _decode_pil(
    image: Image.Image, limits: ImageLimits, *, fmt: str, sha256: str, check_format: bool
) -> DecodedImage:
    if check_format and fmt not in limits.formats:
        raise UnsupportedImageError(f"format {fmt or 'unknown'} is not allowed")
    _check_size(image.width, image.height, limits)
    mode = image.mode
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
        rgb = _to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"decompression bomb: {exc}") from exc
    except Exception as exc:  # truncated data, broken EXIF, codec errors: all per-image failures
        raise ImageDecodeError(f"cannot decode {fmt or 'image'}: {exc}") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    return DecodedImage(
        pixels=pixels,
        width=int(pixels.shape[2]),
        height=int(pixels.shape[1]),
        format=fmt,
        mode=mode,
        sha256=sha256,
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Alpha is dropped (the generator's colour values are kept)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image).astype(np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert("RGB")
