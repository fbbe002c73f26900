"""A corpus of hostile inputs through the real pipeline and broker, in one run.

Every input gets the right dead letter (or a verdict when the image is fine), none is lost,
and a good event after all of them still gets its verdict.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from consumer_support import ImageServer, TopicReader, Topics, encode, image_event, produce
from kafka_support import image_bytes, sha
from PIL import Image

from consumer import Service
from detector import Detector
from schemas import ErrorCode

pytestmark = pytest.mark.kafka

VERDICT = "verdict"
CE = [
    ("ce_specversion", b"1.0"),
    ("ce_source", b"/hostile"),
    ("ce_type", b"io.synthscan.image.v1"),
]
STRUCTURED = [("content-type", b"application/cloudevents+json")]
LIMITS = {"max_pixels": 1_000_000, "max_side": 4096, "min_side": 32}


def _ce(eid: str, content_type: bytes, *extra: tuple[str, bytes]) -> list:
    return [*CE, ("ce_id", eid.encode()), ("content-type", content_type), *extra]


def _structured(**fields: object) -> bytes:
    base = {"specversion": "1.0", "id": "s", "source": "/hostile", "type": "io.synthscan.image.v1"}
    return json.dumps({**base, **fields}).encode()


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    png = image_bytes(0, size=(40, 40))
    body = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF)
    return png[:16] + body + crc + png[33:]


def _gif_claiming(width: int, height: int) -> bytes:
    gif = _save(Image.new("P", (40, 40)), "GIF")
    return gif[:6] + struct.pack("<HH", width, height) + gif[10:]


def _bmp_claiming(width: int, height: int) -> bytes:
    bmp = _save(Image.new("RGB", (40, 40)), "BMP")
    return bmp[:18] + struct.pack("<ii", width, height) + bmp[26:]


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _corpus(server: ImageServer) -> list[tuple[object, bytes | None, list]]:
    """``(expected code or VERDICT, value, headers)``; at least 40 entries."""
    good = image_bytes(7)
    bomb = Image.new("RGB", (1250, 1000), (10, 200, 30))  # over max_pixels, small files
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("P", (64, 48), i) for i in range(3)]
    gif_anim = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    gray16 = Image.fromarray(np.full((40, 50), 40_000, dtype=np.uint16))
    png = lambda eid, data: (data, _ce(eid, b"image/png"))  # noqa: E731
    url = lambda eid, u, **kw: encode(image_event(eid, url=u, **kw))  # noqa: E731
    return [
        # malformed JSON and schema
        (ErrorCode.INVALID_JSON, b"{nope", STRUCTURED),
        (ErrorCode.INVALID_JSON, ("[" * 100_000).encode(), STRUCTURED),
        (ErrorCode.INVALID_JSON, _structured(data={"url": "x"})[:-5], STRUCTURED),
        (
            ErrorCode.INVALID_JSON,
            b'{"url": "https://img.example/a.png"}',
            _ce("deep", b"application/json", ("ce_metadata", _deep(5000).encode())),
        ),
        (
            ErrorCode.INVALID_JSON,
            b'{"url": "https://img.example/a.png"}',
            _ce("badmeta", b"application/json", ("ce_metadata", b"{not json")),
        ),
        (
            ErrorCode.SCHEMA_VIOLATION,  # no id, no source
            json.dumps({"specversion": "1.0", "data": {"url": "https://i.example/a"}}).encode(),
            STRUCTURED,
        ),
        (ErrorCode.SCHEMA_VIOLATION, _structured(data=[1, 2]), STRUCTURED),
        (ErrorCode.SCHEMA_VIOLATION, b"plain text", [("content-type", b"text/plain")]),
        (ErrorCode.SCHEMA_VIOLATION, None, []),
        (
            ErrorCode.SCHEMA_VIOLATION,
            _structured(data={"url": "https://img.example/a.png", "metadata": {"x": "y" * 70000}}),
            STRUCTURED,
        ),
        (ErrorCode.SCHEMA_VIOLATION, _structured(data={"url": "file:///etc/passwd"}), STRUCTURED),
        (ErrorCode.SCHEMA_VIOLATION, _structured(data={"url": "gopher://h/x"}), STRUCTURED),
        # wrong content types
        (
            ErrorCode.UNSUPPORTED_MEDIA,
            b"[]",
            [("content-type", b"application/cloudevents-batch+json")],
        ),
        (ErrorCode.UNSUPPORTED_MEDIA, b"hello", _ce("txt", b"text/plain")),
        (
            ErrorCode.UNSUPPORTED_MEDIA,
            _structured(datacontenttype="text/plain", data_base64=base64.b64encode(good).decode()),
            STRUCTURED,
        ),
        (ErrorCode.UNSUPPORTED_MEDIA, *png("tiny", image_bytes(1, size=(8, 8)))),
        (ErrorCode.UNSUPPORTED_MEDIA, *png("ppm", _save(Image.new("RGB", (40, 40)), "PPM"))),
        # bad base64 and missing images
        (
            ErrorCode.SCHEMA_VIOLATION,
            _structured(datacontenttype="image/png", data_base64="!!not base64!!"),
            STRUCTURED,
        ),
        (ErrorCode.MISSING_IMAGE, b"", _ce("empty", b"image/png")),
        (
            ErrorCode.MISSING_IMAGE,
            _structured(datacontenttype="image/png", data_base64=""),
            STRUCTURED,
        ),
        (ErrorCode.MISSING_IMAGE, _structured(), STRUCTURED),
        (ErrorCode.MISSING_IMAGE, _structured(data={"content_id": "c"}), STRUCTURED),
        # corrupt and truncated images
        (ErrorCode.IMAGE_DECODE_ERROR, *png("garbage", b"\x89PNG\r\n\x1a\n garbage")),
        (ErrorCode.IMAGE_DECODE_ERROR, *png("trunc-png", good[: len(good) // 2])),
        (ErrorCode.IMAGE_DECODE_ERROR, *png("trunc-jpg", image_bytes(2, fmt="JPEG")[:300])),
        (ErrorCode.IMAGE_DECODE_ERROR, *png("svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>')),
        (ErrorCode.IMAGE_DECODE_ERROR, *png("zeros", b"\0" * 4096)),
        # header bombs and real compression bombs of every format
        (ErrorCode.IMAGE_TOO_LARGE, *png("hdr-png", _png_claiming(100_000, 100_000))),
        (ErrorCode.IMAGE_TOO_LARGE, *png("hdr-side", _png_claiming(20_000, 40))),
        (ErrorCode.IMAGE_TOO_LARGE, *png("hdr-gif", _gif_claiming(65_535, 65_535))),
        (ErrorCode.IMAGE_TOO_LARGE, *png("hdr-bmp", _bmp_claiming(30_000, 30_000))),
        (ErrorCode.IMAGE_TOO_LARGE, *png("bomb-png", _save(bomb, "PNG"))),
        (ErrorCode.IMAGE_TOO_LARGE, *png("bomb-gif", _save(bomb.convert("P"), "GIF"))),
        (ErrorCode.IMAGE_TOO_LARGE, *png("bomb-webp", _save(bomb, "WEBP", lossless=True))),
        (ErrorCode.IMAGE_TOO_LARGE, *png("bomb-jpeg", _save(bomb, "JPEG", quality=10))),
        (
            ErrorCode.IMAGE_TOO_LARGE,
            *png("bomb-tiff", _save(bomb, "TIFF", compression="tiff_deflate")),
        ),
        # checksums
        (ErrorCode.CHECKSUM_MISMATCH, *encode(image_event("sum", data=good, sha256="0" * 64))),
        (ErrorCode.CHECKSUM_MISMATCH, *encode(image_event("size", data=good, size=len(good) + 1))),
        # SSRF tricks and fetch failures
        (ErrorCode.FETCH_FORBIDDEN, *url("meta", "http://169.254.169.254/latest/meta-data")),
        (ErrorCode.FETCH_FORBIDDEN, *url("ula6", "http://[fd00::1]/x.png")),
        (ErrorCode.FETCH_FORBIDDEN, *url("dec", "http://2852039166/latest")),
        (ErrorCode.FETCH_FORBIDDEN, *url("v4map", "http://[::ffff:169.254.169.254]/latest")),
        (ErrorCode.FETCH_FORBIDDEN, *url("private", "http://10.1.2.3/x.png")),
        (
            ErrorCode.FETCH_FORBIDDEN,
            *url("userinfo", server.url("/img/1.png").replace("//", "//u:p@")),
        ),
        (ErrorCode.FETCH_FORBIDDEN, *encode(image_event("ref", ref="uploads/a.png"))),
        (ErrorCode.FETCH_FAILED, *url("404", server.url("/nope"))),
        (ErrorCode.FETCH_TOO_LARGE, *url("big", server.url("/big"))),
        # fine images, some dressed oddly: verdicts
        (
            VERDICT,
            *encode(
                image_event("ok-url", url=server.url("/img/3.png"), sha256=sha(image_bytes(3)))
            ),
        ),
        (VERDICT, *png("ok-gray16", _save(gray16, "PNG"))),
        (
            VERDICT,
            *png("ok-cmyk", _save(Image.new("RGB", (60, 40), (1, 2, 3)).convert("CMYK"), "JPEG")),
        ),
        (VERDICT, *png("ok-anim", gif_anim)),
        (VERDICT, *png("ok-exif", _save(Image.new("RGB", (64, 40), (9, 9, 9)), "JPEG", exif=exif))),
        (VERDICT, good, _ce("ok-mime", b"image/jpeg")),  # a PNG declared as JPEG
        (
            VERDICT,
            b'{"url": "%s"}' % server.url("/img/4.png").encode(),
            _ce("ok-meta", b"application/json", ("ce_metadata", _deep(20).encode())),
        ),
    ]


def test_hostile_corpus_gets_the_right_dead_letters_and_the_stream_goes_on(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
    image_server: ImageServer,
) -> None:
    topics = topics_factory(1)
    corpus = _corpus(image_server)
    assert len(corpus) >= 40
    messages = [
        (f"h-{i}".encode(), value, headers) for i, (_c, value, headers) in enumerate(corpus)
    ]
    messages.append((b"last", *encode(image_event("last-good", data=image_bytes(9)))))
    produce(topics.bootstrap, topics.input, messages)

    expected_letters = {
        f"h-{i}": code for i, (code, _v, _h) in enumerate(corpus) if code != VERDICT
    }
    expected_verdicts = len(corpus) - len(expected_letters) + 1
    run_service(topics.settings(checkpoint, model={"limits": LIMITS}), detector=detector)
    dlq = TopicReader(topics.bootstrap, topics.dlq)
    verdicts = TopicReader(topics.bootstrap, topics.verdicts)
    dlq.read_until(len(expected_letters), timeout=60)
    verdicts.read_until(expected_verdicts, timeout=60)
    dlq.settle(0.5)
    got = {(d.original.key or b"").decode(): (d.code, d.message) for d in dlq.dead_letters()}
    seen = sorted(v.source.offset for v in verdicts.verdicts())
    dlq.close()
    verdicts.close()
    wrong = {
        key: (code, got.get(key))
        for key, code in expected_letters.items()
        if got.get(key, (None,))[0] != code
    }
    assert not wrong, "\n".join(f"{k}: want {c}, got {g}" for k, (c, g) in wrong.items())
    # each hostile input: exactly its dead letter
    assert len(got) == len(expected_letters)  # and no dead letter for a fine one
    verdict_offsets = [i for i, (code, _v, _h) in enumerate(corpus) if code == VERDICT]
    assert seen == [*verdict_offsets, len(corpus)]  # fine ones and the last good event
