"""Decoding: modes, EXIF, animation, limits, corrupt files and decompression bombs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector import (
    DECODE_BYTES_PER_PIXEL,
    ImageDecodeError,
    ImageLimits,
    ImageTooLargeError,
    UnsupportedImageError,
    decode_image,
)
from tests.detector.imaging import encode, random_array


def _with_png_size(png: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR of a PNG to claim another size (a header-only bomb)."""
    assert png[12:16] == b"IHDR"
    body = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF)
    return png[:16] + body + crc + png[33:]


def test_rgb_png_bytes() -> None:
    array = random_array(40, 50)
    data = encode(Image.fromarray(array))
    img = decode_image(data)
    assert img.pixels.dtype == torch.uint8 and img.pixels.shape == (3, 40, 50)
    assert torch.equal(img.pixels, torch.from_numpy(array).permute(2, 0, 1))
    assert (img.width, img.height, img.format, img.mode) == (50, 40, "PNG", "RGB")
    assert len(img.sha256) == 64


def test_path_and_pil_inputs(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    Image.fromarray(random_array(48, 64)).save(path, quality=90)
    from_path = decode_image(path)
    assert from_path.format == "JPEG" and from_path.pixels.shape == (3, 48, 64)
    from_pil = decode_image(Image.open(path))
    assert from_pil.sha256 == "" and torch.equal(from_pil.pixels, from_path.pixels)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1", "I;16"])
def test_modes_become_rgb(mode: str) -> None:
    base = Image.fromarray(random_array(40, 40))
    image = base.convert(mode) if mode != "I;16" else None
    if mode == "I;16":
        image = Image.fromarray(np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40)
        assert image.mode == "I;16"
    assert image is not None
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    img = decode_image(encode(image, fmt))
    assert img.mode == mode and img.pixels.shape == (3, 40, 40)
    if mode == "I;16":  # 16-bit values are scaled to 8 bits, not clipped
        expected = np.rint(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8)
        assert torch.equal(img.pixels[0], torch.from_numpy(expected))
    if mode in ("L", "LA", "1", "I;16"):
        assert torch.equal(img.pixels[0], img.pixels[1])


def test_exif_orientation_is_applied() -> None:
    array = np.zeros((40, 64, 3), dtype=np.uint8)
    array[:10, :10] = 255  # white block top-left
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img = decode_image(encode(image, "PNG", exif=exif.tobytes()))
    assert (img.width, img.height) == (40, 64)
    assert img.pixels[:, :10, -10:].float().mean() > 250  # top-left went to the top-right


def test_animated_gif_first_frame() -> None:
    red = Image.new("RGB", (40, 40), (255, 0, 0))
    blue = Image.new("RGB", (40, 40), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue])
    img = decode_image(data)
    assert img.format == "GIF"
    assert img.pixels[0].float().mean() > 200 and img.pixels[2].float().mean() < 50


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_truncated_jpeg_is_a_decode_error() -> None:
    data = encode(Image.fromarray(random_array(200, 200)), "JPEG", quality=95)
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(tmp_path / "absent.png")


@pytest.mark.parametrize(
    ("width", "height"), [(30000, 30000), (12000, 12000), (20000, 40), (70000, 70000)]
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_header_bombs_are_refused_before_decoding(width: int, height: int) -> None:
    png = encode(Image.fromarray(random_array(40, 40)))
    with pytest.raises(ImageTooLargeError):
        decode_image(_with_png_size(png, width, height))


def test_compression_bomb_over_pixel_limit() -> None:
    data = encode(Image.new("L", (2000, 2000)))
    assert len(data) < 20_000  # tiny file, 4 megapixels
    with pytest.raises(ImageTooLargeError):
        decode_image(data, ImageLimits(max_pixels=1_000_000))


def test_byte_limit(make_png: object) -> None:
    data = encode(Image.fromarray(random_array(64, 64)))
    with pytest.raises(ImageTooLargeError):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))


def test_too_small_and_unsupported_format() -> None:
    with pytest.raises(UnsupportedImageError):
        decode_image(encode(Image.fromarray(random_array(20, 100))))
    with pytest.raises(UnsupportedImageError):
        decode_image(encode(Image.fromarray(random_array(40, 40)), "PPM"))


def test_before_decode_sees_the_header_size_and_can_refuse() -> None:
    data = encode(Image.fromarray(random_array(40, 50)))
    seen: list[tuple[int, int]] = []
    img = decode_image(data, before_decode=lambda w, h: seen.append((w, h)))
    assert seen == [(50, 40)] and img.nbytes == 3 * 40 * 50

    def refuse(_w: int, _h: int) -> None:
        raise RuntimeError("no room")

    with pytest.raises(RuntimeError, match="no room"):
        decode_image(data, before_decode=refuse)
    bare = img.without_pixels()
    assert bare.nbytes == 0 and (bare.width, bare.height, bare.sha256) == (50, 40, img.sha256)


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "I;16"])
def test_decoding_keeps_no_extra_full_size_copies(mode: str) -> None:
    side = 3000
    if mode == "I;16":
        image = Image.fromarray(np.full((side, side), 40_000, dtype=np.uint16))
    else:
        image = Image.new("RGB", (side, side), (200, 30, 90)).convert(mode)
    data = encode(image)
    del image
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
    except OSError as exc:  # Linux only; CI and the dev machines are Linux
        pytest.fail(f"cannot reset the peak RSS through /proc/self/clear_refs: {exc}")
    base = _status_kib("VmRSS")
    img = decode_image(data)
    per_pixel = (_status_kib("VmHWM") - base) * 1024 / (side * side)
    assert img.pixels.shape == (3, side, side)
    # Measured 9-10 bytes a pixel (PIL's 4-byte buffer, the 3-byte result, a plane in
    # transit); the previous decoder peaked at 16-32 with its intermediate full-size copies.
    assert per_pixel <= DECODE_BYTES_PER_PIXEL - 1, f"{per_pixel:.1f} bytes a pixel"
