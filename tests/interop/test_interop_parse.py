"""Liberal in what we accept: SDK quirks parse, ambiguous messages still do not (no broker)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from interop_support import image_bytes, sha, spec_for
from sdk_clients import SDKS, encode

from schemas import ErrorCode, EventError, parse_image_event


@pytest.mark.parametrize("sdk", SDKS)
def test_sdk_structured_png_parses_whatever_the_content_type_header(sdk: str, sdk1: Path) -> None:
    spec, image_sha = spec_for("structured-data_base64", "e-1", 5, "unused")
    ((headers, value),) = encode(sdk, [spec], sdk1)
    parsed = parse_image_event(value, list(headers.items()))
    assert (parsed.mode, parsed.encoding) == ("structured", "raw")
    assert parsed.inline_bytes == image_bytes(5)
    assert parsed.sha256 == image_sha
    assert parsed.content_id == "c-e-1"


def test_envelope_without_datacontenttype_takes_the_image_type_from_the_header() -> None:
    """cloudevents 2.x's 1.x API moves `datacontenttype` out of the envelope into the header."""
    img = image_bytes(6)
    body = {"specversion": "1.0", "id": "e-2", "source": "/s", "type": "t"}
    body["data_base64"] = base64.b64encode(img).decode()
    parsed = parse_image_event(json.dumps(body).encode(), [("content-type", b"image/png")])
    assert parsed.inline_bytes == img
    assert parsed.event.data.mime == "image/png"
    assert sha(parsed.inline_bytes) == sha(img)


@pytest.mark.parametrize(
    ("value", "content_type", "code"),
    [
        # a JSON object without specversion under an image type: not a CloudEvent
        (b'{"url": "https://x/1.png"}', b"image/png", ErrorCode.SCHEMA_VIOLATION),
        # specversion but data_base64 of unknown type (no datacontenttype, header not image/*)
        (
            b'{"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data_base64": ""}',
            b"text/plain",
            ErrorCode.UNSUPPORTED_MEDIA,
        ),
        # not JSON at all under a non-CloudEvents type
        (b"\x89PNG\r\n\x1a\n", b"image/png", ErrorCode.SCHEMA_VIOLATION),
    ],
)
def test_ambiguous_messages_are_still_refused(
    value: bytes, content_type: bytes, code: ErrorCode
) -> None:
    with pytest.raises(EventError) as err:
        parse_image_event(value, [("content-type", content_type)])
    assert err.value.code == code
