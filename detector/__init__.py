"""synthscan detector: global + local feature fusion (GLFF) for AI-synthesized images.

Public API (everything else is importable from its module but may change)::

    from detector import Detector, decode_image
    det = Detector.from_checkpoint("model.safetensors", device="auto", precision="auto")
    predictions = det.predict([decode_image(data) for data in uploads])
"""

from detector.decode import DECODE_BYTES_PER_PIXEL, DecodedImage, ImageLimits, decode_image
from detector.engine import Detector, ModelInfo, PatchEvidence, Prediction
from detector.errors import (
    CheckpointError,
    DetectorError,
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
)
from detector.options import EngineOptions

__all__ = [
    "DECODE_BYTES_PER_PIXEL",
    "CheckpointError",
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

__version__ = "0.1.0"
