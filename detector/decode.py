"""Image decoding: bytes, paths (``str`` or path-like) or PIL images -> RGB ``uint8 [3, H, W]``
tensors, with limits.

Thread-safe and CPU-only: it reads no global PIL setting it would have to change
(``Image.MAX_IMAGE_PIXELS`` is left alone; our own :class:`ImageLimits` are checked from the
header before any pixel is decoded) and touches no torch state.

Memory: besides PIL's own decoded image (up to 4 bytes a pixel), decoding allocates the
``[3, H, W]`` result once and fills it plane by plane; the peak is about
:data:`DECODE_BYTES_PER_PIXEL` bytes a pixel (``before_decode`` lets a caller reserve that much
from the header size, before any pixel is decoded).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from detector.errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

__all__ = [
    "DECODE_BYTES_PER_PIXEL",
    "DEFAULT_FORMATS",
    "DecodedImage",
    "ImageInput",
    "ImageLimits",
    "decode_image",
]

DEFAULT_FORMATS: frozenset[str] = frozenset(
    {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "AVIF", "HEIF"}
)

ImageInput = bytes | str | os.PathLike[str] | Image.Image
"""An encoded image (``bytes``), a file path (``str``, :class:`~pathlib.Path` or any path-like)
or a PIL image."""

# Peak bytes a pixel while decoding (measured: 9 for RGB/RGBA PNG and JPEG, 10 for palette and
# 16-bit PNG, 13 for CMYK JPEG): PIL's 4-byte buffer, a converted copy for CMYK/palette modes,
# the uint8 [3, H, W] result (3) and one plane in transit (2).
DECODE_BYTES_PER_PIXEL = 13
_RGB_BANDS = ("RGB", "RGBA", "RGBX")


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

    @property
    def nbytes(self) -> int:
        """Bytes held by ``pixels``."""
        return int(self.pixels.numel() * self.pixels.element_size())

    def without_pixels(self) -> DecodedImage:
        """The same description with the pixels released (once the model has seen them)."""
        return replace(self, pixels=torch.empty((3, 0, 0), dtype=torch.uint8))


def decode_image(
    data: ImageInput,
    limits: ImageLimits = ImageLimits(),
    *,
    before_decode: Callable[[int, int], None] | None = None,
) -> DecodedImage:
    """Decode ``data`` to RGB.

    Args:
        before_decode: called with ``(width, height)`` once the header passed the limits and
            before any pixel is decoded (admission control: it may block, or raise to refuse).

    Raises:
        ImageDecodeError: corrupt, truncated or not an image.
        ImageTooLargeError: more than ``max_bytes``, ``max_pixels`` or ``max_side``, or a
            decompression bomb refused by PIL.
        UnsupportedImageError: a format outside ``limits.formats`` or a side below ``min_side``.
    """
    if isinstance(data, Image.Image):
        return _decode_pil(
            data, limits, fmt=data.format or "", sha256="", owned=False, hook=before_decode
        )
    if isinstance(data, str | os.PathLike):
        data = _read_file(Path(data), limits)
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
        return _decode_pil(
            image, limits, fmt=image.format or "", sha256=digest, owned=True, hook=before_decode
        )


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
    image: Image.Image,
    limits: ImageLimits,
    *,
    fmt: str,
    sha256: str,
    owned: bool,
    hook: Callable[[int, int], None] | None,
) -> DecodedImage:
    """Decode an opened image; ``owned``: it was opened here (its format is checked and it
    may be transposed in place), else it is the caller's and stays untouched."""
    if owned and fmt not in limits.formats:
        raise UnsupportedImageError(f"format {fmt or 'unknown'} is not allowed")
    _check_size(image.width, image.height, limits)
    if hook is not None:
        hook(image.width, image.height)
    mode = image.mode
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        image.load()
        if owned:
            ImageOps.exif_transpose(image, in_place=True)
        else:
            image = ImageOps.exif_transpose(image)
        pixels = _to_planes(image)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"decompression bomb: {exc}") from exc
    except Exception as exc:  # truncated data, broken EXIF, codec errors: all per-image failures
        raise ImageDecodeError(f"cannot decode {fmt or 'image'}: {exc}") from exc
    return DecodedImage(
        pixels=pixels,
        width=int(pixels.shape[2]),
        height=int(pixels.shape[1]),
        format=fmt,
        mode=mode,
        sha256=sha256,
    )


def _to_planes(image: Image.Image) -> torch.Tensor:
    """A loaded image -> ``uint8 [3, H, W]``, written plane by plane into one allocation.

    RGB/RGBA/RGBX bands are read straight from PIL's buffer (alpha is dropped); grayscale is
    copied into all three planes; other modes are converted to RGB first (one more copy).
    """
    width, height = image.size
    planes = np.empty((3, height, width), dtype=np.uint8)
    if image.mode in ("L", "1") or image.mode in _WIDE_GRAY:
        gray = _gray(image)
        for plane in planes:
            plane[...] = gray
        del gray
    else:
        rgb = image if image.mode in _RGB_BANDS else _convert_rgb(image)
        for index, band in enumerate("RGB"):
            plane = np.frombuffer(rgb.tobytes("raw", band), dtype=np.uint8)
            planes[index] = plane.reshape(height, width)
            del plane
        if rgb is not image:
            rgb.close()
    return torch.from_numpy(planes)


_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _gray(image: Image.Image) -> np.ndarray:
    """``L``/``1`` as they are; 16-bit and 32-bit grayscale scaled to 8 bits."""
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L") if image.mode == "1" else image, dtype=np.uint8)
    values = np.asarray(image)
    if image.mode.startswith("I;16"):  # round(v / 257) in integers: no float64 copy
        wide = values.astype(np.uint32)
        wide += 128
        wide //= 257
        return wide.astype(np.uint8)
    scaled = values.astype(np.float64)
    if image.mode == "I" and scaled.max(initial=0) > 255:
        np.divide(scaled, 257.0, out=scaled)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def _convert_rgb(image: Image.Image) -> Image.Image:
    """Palette, CMYK, YCbCr, LA ... -> 8-bit RGB (palette transparency via RGBA, as PIL does)."""
    if image.mode in ("P", "PA"):
        rgba = image.convert("RGBA")
        return rgba  # its R, G, B bands are read directly
    return image.convert("RGB")
