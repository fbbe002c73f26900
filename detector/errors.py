"""Exceptions raised by the detector package.

Hierarchy::

    DetectorError                  base of everything raised on purpose here
    ├── ImageError                 a single input image cannot be used
    │   ├── ImageDecodeError       corrupt, truncated or not an image at all
    │   ├── ImageTooLargeError     too many bytes, pixels or a side too long (decompression bomb)
    │   └── UnsupportedImageError  a format that is not allowed, or an image below the minimum side
    └── CheckpointError            missing, pickled, malformed or mismatched checkpoint

``ImageError`` subclasses are per-image (poison) failures: a caller skips that image and goes on.
``CheckpointError`` is a deployment failure: the service should not start.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "DetectorError",
    "ImageDecodeError",
    "ImageError",
    "ImageTooLargeError",
    "UnsupportedImageError",
]


class DetectorError(Exception):
    """Base class of all errors raised deliberately by :mod:`detector`."""


class ImageError(DetectorError):
    """An input image cannot be used; the other images of a batch are unaffected."""


class ImageDecodeError(ImageError):
    """The bytes are corrupt, truncated or not an image."""


class ImageTooLargeError(ImageError):
    """The image exceeds a byte, pixel or side limit (this includes decompression bombs)."""


class UnsupportedImageError(ImageError):
    """The image format is not allowed, or the image is smaller than the minimum side."""


class CheckpointError(DetectorError):
    """A checkpoint is missing, pickled, malformed, or does not match the model it claims."""
