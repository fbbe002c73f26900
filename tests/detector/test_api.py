"""The public API is pinned: changing it is a contract change for consumer and training."""

from __future__ import annotations

import detector


def test_public_names() -> None:
    assert sorted(detector.__all__) == [
        "CheckpointError",
        "DECODE_BYTES_PER_PIXEL",
        "DecodedImage",
        "Detector",
        "DetectorError",
        "EngineOptions",
        "ImageDecodeError",
        "ImageError",
        "ImageLimits",
        "ImageTooLargeError",
        "ModelInfo",
        "PatchEvidence",
        "Prediction",
        "UnsupportedImageError",
        "decode_image",
    ]
    for name in detector.__all__:
        assert getattr(detector, name) is not None


def test_error_hierarchy() -> None:
    assert issubclass(detector.ImageDecodeError, detector.ImageError)
    assert issubclass(detector.ImageTooLargeError, detector.ImageError)
    assert issubclass(detector.UnsupportedImageError, detector.ImageError)
    assert issubclass(detector.ImageError, detector.DetectorError)
    assert issubclass(detector.CheckpointError, detector.DetectorError)
    assert not issubclass(detector.CheckpointError, detector.ImageError)
