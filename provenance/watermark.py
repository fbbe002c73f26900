"""The invisible watermark Stable Diffusion (v1/v2) and SDXL embed by default (decode only).

Both use ``invisible-watermark``'s ``dwtDct`` method: SD v1/v2 the 136-bit message
``StableDiffusionV1``, SDXL a fixed 48-bit message. Decoding costs 80-375 ms per 512x512
image on one CPU core and grows with the pixel count, so it is off by default and skipped
above a pixel cap. The mark does not survive re-encoding (measured: gone after JPEG q=95),
so its absence says nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provenance.findings import Finding, Unreadable

__all__ = ["SDXL_BITS", "SD_MESSAGE", "available", "read_watermark"]

SD_MESSAGE = b"StableDiffusionV1"
SDXL_BITS = [int(b) for b in bin(0b101100111110110010010000011110111011000110011110)[2:]]
_SD_MIN_AGREE = 128  # of 136 bits; a random image agrees on about 68
_SDXL_MIN_AGREE = 45  # of 48 bits; a random image agrees on about 24


def available() -> bool:
    """Whether ``invisible-watermark`` (and OpenCV) can be imported."""
    try:
        import imwatermark  # noqa: F401
    except Exception:
        return False
    return True


def _agree(bits: Any, expected: list[int]) -> int:
    return int(sum(int(a) == b for a, b in zip(bits, expected, strict=False)))


def read_watermark(rgb: np.ndarray, max_pixels: int) -> tuple[list[Finding], list[Unreadable]]:
    """Look for the SD and SDXL marks in ``rgb`` (``uint8 [H, W, 3]``)."""
    height, width = rgb.shape[:2]
    if height * width > max_pixels:
        return [], [Unreadable("watermark", f"skipped: {width}x{height} over {max_pixels} px")]
    if min(height, width) < 256:  # dwtDct needs enough 4x4 blocks for 136 bits
        return [], []
    from imwatermark import WatermarkDecoder

    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    sd_bits = np.unpackbits(np.frombuffer(SD_MESSAGE, dtype=np.uint8)).tolist()
    found: list[Finding] = []
    decoded = WatermarkDecoder("bits", len(sd_bits)).decode(bgr, "dwtDct")
    agree = _agree(decoded, sd_bits)
    if agree >= _SD_MIN_AGREE:
        detail = f"{agree}/{len(sd_bits)} bits"
        found.append(
            Finding("watermark", "invisible_watermark", "StableDiffusionV1", False, detail)
        )
    decoded = WatermarkDecoder("bits", len(SDXL_BITS)).decode(bgr, "dwtDct")
    agree = _agree(decoded, SDXL_BITS)
    if agree >= _SDXL_MIN_AGREE:
        detail = f"{agree}/{len(SDXL_BITS)} bits"
        found.append(Finding("watermark", "invisible_watermark", "SDXL", False, detail))
    return found, []
