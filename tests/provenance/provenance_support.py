"""Builders of real test files: a test PKI, C2PA-signed JPEG/PNG, generator PNGs, IPTC XMP.

The PKI and the C2PA signer live in :mod:`scripts.tools.c2pa_signing` (the provenance
benchmark uses them too) and are re-exported here."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

from scripts.tools.c2pa_signing import IPTC, Pki, Signer, c2pa_sign, make_ca, make_pki, make_signer

__all__ = ["IPTC", "Pki", "Signer", "c2pa_sign", "make_ca", "make_pki", "make_signer"]


def photo(seed: int = 0, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A smooth random RGB picture (structured enough for PDQ, JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size[1] // 8 + 1, size[0] // 8 + 1, 3)) * 255
    img = Image.fromarray(coarse.astype(np.uint8)).resize(size, Image.BICUBIC)
    return img


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def tamper(data: bytes) -> bytes:
    """Flip bits near the end of the image data (after the manifest): the hash breaks."""
    out = bytearray(data)
    at = int(len(out) * 0.9)
    out[at] ^= 0xFF
    out[at + 1] ^= 0x55
    return bytes(out)


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_with_chunks(image: Image.Image, chunks: list[bytes]) -> bytes:
    """A PNG with extra chunks inserted right after IHDR."""
    data = encode(image, "PNG")
    at = 8 + 8 + 13 + 4  # signature + IHDR
    return data[:at] + b"".join(chunks) + data[at:]


def text_chunk(key: str, value: str) -> bytes:
    return png_chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))


def itxt_chunk(key: str, value: str, compressed: bool = False) -> bytes:
    text = value.encode("utf-8")
    if compressed:
        text = zlib.compress(text)
    flag = b"\x01\x00" if compressed else b"\x00\x00"
    return png_chunk(b"iTXt", key.encode("latin-1") + b"\x00" + flag + b"\x00\x00" + text)


A1111 = (
    "a photo of an astronaut riding a horse\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
)
COMFY_PROMPT = json.dumps(
    {
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
    }
)
COMFY_WORKFLOW = json.dumps(
    {"nodes": [{"id": 3, "type": "KSampler"}, {"id": 4, "type": "CheckpointLoaderSimple"}]}
)


def xmp_packet(source_type: str = "trainedAlgorithmicMedia", tool: str = "TestPainter 2.0") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{source_type}" '
        f'xmp:CreatorTool="{tool}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def jpeg_with_xmp(image: Image.Image, packet: str) -> bytes:
    """A JPEG whose APP1 XMP segment holds ``packet`` (Pillow writes it)."""
    return encode(image, "JPEG", quality=90, xmp=packet.encode("utf-8"))


def jpeg_with_software(image: Image.Image, software: str) -> bytes:
    exif = Image.Exif()
    exif[0x0131] = software
    return encode(image, "JPEG", quality=90, exif=exif)


# The PNG of python-threatexchange's PDQ test (facebook/ThreatExchange,
# python-threatexchange/threatexchange/tests/hashing/test_pdq_hasher.py) and its hash there.
HMA_RANDOM_IMAGE_PDQ = "ad64cd9875e131a177b1f2a0d6b38ae1de9ea80421e4c51dde1b0363deba3466"


def hma_random_image() -> bytes:
    from pathlib import Path

    return base64.b64decode((Path(__file__).parent / "hma_random_image.b64").read_text())
