"""The SD/SDXL invisible watermark: found in the PNG it was embedded in, gone after JPEG 75."""

from __future__ import annotations

import io

import imwatermark  # the watermark extra; make install has it
import numpy as np
import pytest
from PIL import Image
from provenance_support import encode

from provenance import Extractor, ProvenanceConfig
from provenance.watermark import SD_MESSAGE, SDXL_BITS, read_watermark


def _photo() -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((384, 384)))


def _embed(rgb: np.ndarray, kind: str) -> np.ndarray:
    encoder = imwatermark.WatermarkEncoder()
    if kind == "sd":
        encoder.set_watermark("bytes", SD_MESSAGE)
    else:
        encoder.set_watermark("bits", SDXL_BITS)
    return np.asarray(encoder.encode(np.ascontiguousarray(rgb[:, :, ::-1]), "dwtDct")[:, :, ::-1])


@pytest.mark.parametrize(("kind", "value"), [("sd", "StableDiffusionV1"), ("sdxl", "SDXL")])
def test_the_watermark_is_found_in_the_png_and_not_after_jpeg_75(kind: str, value: str) -> None:
    marked = Image.fromarray(_embed(_photo(), kind))
    png = Image.open(io.BytesIO(encode(marked, "PNG")))
    found, _ = read_watermark(np.asarray(png.convert("RGB")), 1 << 20)
    assert [(f.kind, f.value) for f in found] == [("invisible_watermark", value)]
    assert not found[0].verified
    jpeg = Image.open(io.BytesIO(encode(marked, "JPEG", quality=75)))
    assert read_watermark(np.asarray(jpeg.convert("RGB")), 1 << 20) == ([], [])


def test_an_unmarked_image_has_no_watermark_and_big_ones_are_skipped() -> None:
    assert read_watermark(_photo(), 1 << 20) == ([], [])
    found, skipped = read_watermark(_photo(), 1000)
    assert found == [] and skipped[0].reason.startswith("skipped: 384x384")


def test_the_watermark_is_off_by_default() -> None:
    marked = _embed(_photo(), "sd")
    data = encode(Image.fromarray(marked), "PNG")
    assert Extractor().extract(data, marked).findings == ()
    on = Extractor(ProvenanceConfig(watermark=True, timeout_s=30.0)).extract(data, marked)
    assert [f.value for f in on.findings] == ["StableDiffusionV1"]
    assert on.extra["watermark_ms"] > 0
