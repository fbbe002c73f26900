"""CloudEvents Kafka codec: round trips in every mode, and every parse error code."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schema_builders import PNG, PNG_SHA

from schemas import (
    ErrorCode,
    EventError,
    ImageData,
    ImageEvent,
    Verdict,
    decode_dead_letter,
    decode_verdict,
    encode_image_event,
    encode_verdict,
    parse_image_event,
)

CE = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"evt-9"),
    ("ce_source", b"/platform/photos"),
    ("ce_type", b"io.synthscan.image.v1"),
]
JSON_CT = ("content-type", b"application/json")
STRUCTURED_CT = ("content-type", b"application/cloudevents+json")

# --- hypothesis strategies -------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=24)
_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_metadata = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        _json_leaf,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)
_url = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}\.[a-z]{2,4}(:[1-9][0-9]{1,4})?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.~/-]{0,30}", fullmatch=True),
)
_ref = st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9_-][a-z0-9._-]{0,8}){0,3}", fullmatch=True)
_image = st.binary(min_size=1, max_size=96).map(lambda b: b"\x89PNG\r\n\x1a\n" + b)
_sha = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)


@st.composite
def image_events(draw: st.DrawFn) -> ImageEvent:
    kind = draw(st.sampled_from(["url", "ref", "inline"]))
    fields: dict[str, object] = {
        "content_id": draw(st.none() | _text),
        "tenant": draw(st.none() | _text),
        "platform": draw(st.none() | _text),
        "metadata": draw(_metadata),
    }
    if kind == "inline":
        image = draw(_image)
        fields |= {"data": image, "mime": "image/png"}
        if draw(st.booleans()):
            fields |= {"sha256": hashlib.sha256(image).hexdigest(), "size_bytes": len(image)}
    else:
        fields[kind] = draw(_url if kind == "url" else _ref)
        fields |= {"sha256": draw(st.none() | _sha), "size_bytes": draw(st.none() | st.integers(0))}
        fields["mime"] = draw(st.none() | st.sampled_from(["image/jpeg", "image/webp"]))
    return ImageEvent(
        id=draw(_text),
        source=draw(_text),
        type=draw(st.sampled_from(["io.synthscan.image.v1", "com.example.upload"])),
        time=draw(st.none() | st.datetimes(timezones=st.just(UTC))),
        subject=draw(st.none() | _text),
        dataschema=draw(st.none() | st.just("https://example.com/schemas/image-v1.json")),
        data=ImageData.model_validate(fields),
    )


@settings(max_examples=100, deadline=None)
@given(
    event=image_events(),
    mode=st.sampled_from(["binary", "structured"]),
    inline=st.sampled_from(["raw", "base64"]),
)
def test_round_trip_every_mode(event: ImageEvent, mode: str, inline: str) -> None:
    value, headers = encode_image_event(event, mode=mode, inline=inline)  # type: ignore[arg-type]
    parsed = parse_image_event(value, headers)
    assert parsed.event == event
    assert parsed.mode == mode
    kind = event.data.source_kind
    assert parsed.encoding == (inline if kind == "inline" else kind)
    # The JSON form of the model itself round-trips too.
    assert ImageEvent.model_validate_json(event.model_dump_json()) == event


# --- binary and structured forms, by hand ------------------------------------------------------


def test_binary_raw_image_value(png_event: ImageEvent) -> None:
    value, headers = encode_image_event(png_event)
    names = dict(headers)
    assert value == PNG
    assert names["content-type"] == b"image/png"
    assert names["ce_contentid"] == b"post/42/img/0"
    assert names["ce_sha256"] == PNG_SHA.encode()
    assert names["ce_time"] == b"2026-11-22T00:05:00Z"
    parsed = parse_image_event(value, headers)
    assert (parsed.mode, parsed.encoding, parsed.inline_bytes) == ("binary", "raw", PNG)
    assert parsed.content_id == "post/42/img/0"


def test_binary_json_value_by_url_and_header_fill() -> None:
    body = {"url": "https://cdn.example.com/u/42.jpg", "sha256": "AB" * 32, "size_bytes": 123}
    headers = [
        *CE,
        JSON_CT,
        ("ce_contentid", b"from-header"),
        ("traceparent", b"x"),
        ("ce_x1", b"y"),
    ]
    parsed = parse_image_event(json.dumps(body).encode(), headers)
    assert parsed.encoding == "url"
    assert parsed.url == body["url"]
    assert parsed.sha256 == "ab" * 32  # normalised to lower case
    assert parsed.size_bytes == 123
    assert parsed.content_id == "from-header"
    assert parsed.extensions == {"x1": "y"}


def test_json_fields_win_over_extension_headers() -> None:
    body = {"ref": "uploads/1.jpg", "content_id": "from-json"}
    parsed = parse_image_event(json.dumps(body).encode(), [*CE, JSON_CT, ("ce_contentid", b"h")])
    assert (parsed.encoding, parsed.ref, parsed.content_id) == ("ref", "uploads/1.jpg", "from-json")


def test_structured_with_data_base64() -> None:
    obj = {
        "specversion": "1.0",
        "id": "e",
        "source": "s",
        "type": "t",
        "datacontenttype": "image/png",
        "data_base64": base64.b64encode(PNG).decode(),
        "contentid": "c-1",
        "sizebytes": len(PNG),
        "metadata": {"k": 1},
    }
    parsed = parse_image_event(json.dumps(obj).encode(), [STRUCTURED_CT])
    assert (parsed.mode, parsed.encoding, parsed.inline_bytes) == ("structured", "raw", PNG)
    assert parsed.event.data.metadata == {"k": 1}
    assert parsed.content_id == "c-1"


def test_structured_without_headers_and_dict_headers() -> None:
    obj = {
        "specversion": "1.0",
        "id": "e",
        "source": "s",
        "type": "t",
        "data": {"url": "http://h.io/a"},
    }
    assert parse_image_event(json.dumps(obj).encode(), None).mode == "structured"
    ct = {"Content-Type": "application/cloudevents+json; charset=UTF-8"}
    assert parse_image_event(json.dumps(obj).encode(), ct).url == "http://h.io/a"


def test_content_id_falls_back_to_subject_then_id() -> None:
    body = b'{"url": "https://a.io/x"}'
    assert parse_image_event(body, [*CE, JSON_CT]).content_id == "evt-9"
    assert parse_image_event(body, [*CE, JSON_CT, ("ce_subject", b"sub")]).content_id == "sub"


def test_expected_types() -> None:
    body = b'{"url": "https://a.io/x"}'
    parse_image_event(body, [*CE, JSON_CT], expected_types={"io.synthscan.image.v1"})
    with pytest.raises(EventError) as err:
        parse_image_event(body, [*CE, JSON_CT], expected_types={"other"})
    assert err.value.code is ErrorCode.SCHEMA_VIOLATION


def test_encode_raw_needs_a_media_type() -> None:
    event = ImageEvent(id="e", source="s", data=ImageData(data=b"not an image"))
    with pytest.raises(ValueError, match="mime"):
        encode_image_event(event, inline="raw")
    value, _ = encode_image_event(event, inline="base64")
    assert json.loads(value)["data"] == base64.b64encode(b"not an image").decode()


# --- every error code ------------------------------------------------------------------------

_BIN_PNG = [*CE, ("content-type", b"image/png")]
_STRUCT = {"specversion": "1.0", "id": "e", "source": "s", "type": "t"}


def _j(obj: object) -> bytes:
    return json.dumps(obj).encode()


ERROR_CASES: list[tuple[str, bytes | None, Sequence[tuple[str, bytes | None]], ErrorCode]] = [
    ("truncated json", b'{"url": ', [*CE, JSON_CT], ErrorCode.INVALID_JSON),
    ("non-utf8 json", b"{\xff}", [*CE, JSON_CT], ErrorCode.INVALID_JSON),
    ("empty json value", b"", [*CE, JSON_CT], ErrorCode.INVALID_JSON),
    ("null json value", None, [*CE, JSON_CT], ErrorCode.INVALID_JSON),
    ("structured garbage", b"{{", [STRUCTURED_CT], ErrorCode.INVALID_JSON),
    ("metadata header not json", PNG, [*_BIN_PNG, ("ce_metadata", b"{x")], ErrorCode.INVALID_JSON),
    ("json array", b"[1]", [*CE, JSON_CT], ErrorCode.SCHEMA_VIOLATION),
    ("not a cloudevent", PNG, [("content-type", b"image/png")], ErrorCode.SCHEMA_VIOLATION),
    ("no headers, plain bytes", b"hello", [], ErrorCode.SCHEMA_VIOLATION),
    (
        "null ce_specversion",
        PNG,
        [("ce_specversion", None), *_BIN_PNG[1:]],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "structured without specversion",
        _j({"id": "e", "source": "s", "type": "t", "data": {"url": "http://h/x"}}),
        [STRUCTURED_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    ("missing ce_id", PNG, [h for h in _BIN_PNG if h[0] != "ce_id"], ErrorCode.SCHEMA_VIOLATION),
    (
        "bad specversion",
        PNG,
        [("ce_specversion", b"0.3"), *_BIN_PNG[1:]],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    ("bad time", PNG, [*_BIN_PNG, ("ce_time", b"yesterday")], ErrorCode.SCHEMA_VIOLATION),
    (
        "naive time",
        PNG,
        [*_BIN_PNG, ("ce_time", b"2026-11-22T00:00:00")],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    ("non-utf8 header", PNG, [*_BIN_PNG, ("ce_subject", b"\xff")], ErrorCode.SCHEMA_VIOLATION),
    ("duplicate ce_id", PNG, [*_BIN_PNG, ("ce_id", b"again")], ErrorCode.SCHEMA_VIOLATION),
    ("ftp url", _j({"url": "ftp://h/x"}), [*CE, JSON_CT], ErrorCode.SCHEMA_VIOLATION),
    (
        "ref traversal",
        _j({"ref": "a/../../etc/passwd"}),
        [*CE, JSON_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "url and ref",
        _j({"url": "http://h/x", "ref": "k"}),
        [*CE, JSON_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    ("bad base64", _j({"data": "***"}), [*CE, JSON_CT], ErrorCode.SCHEMA_VIOLATION),
    (
        "bad sha256",
        _j({"url": "http://h/x", "sha256": "abc"}),
        [*CE, JSON_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "negative size",
        _j({"url": "http://h/x", "size_bytes": -1}),
        [*CE, JSON_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "metadata too big",
        _j({"url": "http://h/x", "metadata": {"k": "x" * 9000}}),
        [*CE, JSON_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "structured data not object",
        _j({**_STRUCT, "data": "x"}),
        [STRUCTURED_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "data and data_base64",
        _j({**_STRUCT, "data": {}, "data_base64": "", "datacontenttype": "image/png"}),
        [STRUCTURED_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "data_base64 invalid",
        _j({**_STRUCT, "data_base64": "%%%", "datacontenttype": "image/png"}),
        [STRUCTURED_CT],
        ErrorCode.SCHEMA_VIOLATION,
    ),
    (
        "text/plain value",
        b"hi",
        [*CE, ("content-type", b"text/plain")],
        ErrorCode.UNSUPPORTED_MEDIA,
    ),
    ("no content-type, raw", PNG, CE, ErrorCode.UNSUPPORTED_MEDIA),
    (
        "ce batch format",
        b"[]",
        [("content-type", b"application/cloudevents-batch+json")],
        ErrorCode.UNSUPPORTED_MEDIA,
    ),
    (
        "data_base64 not image",
        _j({**_STRUCT, "data_base64": "AA==", "datacontenttype": "text/plain"}),
        [STRUCTURED_CT],
        ErrorCode.UNSUPPORTED_MEDIA,
    ),
    (
        "structured xml data",
        _j({**_STRUCT, "data": {}, "datacontenttype": "application/xml"}),
        [STRUCTURED_CT],
        ErrorCode.UNSUPPORTED_MEDIA,
    ),
    ("empty raw value", b"", _BIN_PNG, ErrorCode.MISSING_IMAGE),
    ("null raw value", None, _BIN_PNG, ErrorCode.MISSING_IMAGE),
    ("json without image", _j({"content_id": "c"}), [*CE, JSON_CT], ErrorCode.MISSING_IMAGE),
    ("structured without data", _j(_STRUCT), [STRUCTURED_CT], ErrorCode.MISSING_IMAGE),
    (
        "structured null data",
        _j({**_STRUCT, "data": None}),
        [STRUCTURED_CT],
        ErrorCode.MISSING_IMAGE,
    ),
    (
        "empty data_base64",
        _j({**_STRUCT, "data_base64": "", "datacontenttype": "image/png"}),
        [STRUCTURED_CT],
        ErrorCode.MISSING_IMAGE,
    ),
    ("raw size mismatch", PNG, [*_BIN_PNG, ("ce_sizebytes", b"1")], ErrorCode.CHECKSUM_MISMATCH),
    ("raw sha mismatch", PNG, [*_BIN_PNG, ("ce_sha256", b"0" * 64)], ErrorCode.CHECKSUM_MISMATCH),
    (
        "base64 sha mismatch",
        _j({"data": base64.b64encode(PNG).decode(), "sha256": "1" * 64}),
        [*CE, JSON_CT],
        ErrorCode.CHECKSUM_MISMATCH,
    ),
]


@pytest.mark.parametrize(
    ("value", "headers", "code"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_parse_errors(
    value: bytes | None, headers: list[tuple[str, bytes]], code: ErrorCode
) -> None:
    with pytest.raises(EventError) as err:
        parse_image_event(value, headers)
    assert err.value.code is code
    assert err.value.message
    assert "AAAA" not in err.value.message  # never echoes payloads


def test_every_parse_code_is_exercised() -> None:
    parse_codes = {
        ErrorCode.INVALID_JSON,
        ErrorCode.SCHEMA_VIOLATION,
        ErrorCode.UNSUPPORTED_MEDIA,
        ErrorCode.MISSING_IMAGE,
        ErrorCode.CHECKSUM_MISMATCH,
    }
    assert {c[3] for c in ERROR_CASES} == parse_codes


# --- verdict and dead-letter records ---------------------------------------------------------


def test_verdict_record(verdict: Verdict) -> None:
    key, value, headers = encode_verdict(verdict)
    names = dict(headers)
    assert key == PNG_SHA.encode()
    assert names["ce_type"] == b"io.synthscan.verdict.v1"
    assert names["ce_id"] == verdict.verdict_id.encode()
    assert names["ce_label"] == b"synthetic"
    assert names["content-type"] == b"application/json"
    assert decode_verdict(value, headers) == verdict
    assert decode_verdict(value) == verdict
    key, _, _ = encode_verdict(verdict, key_by="content_id")
    assert key == b"post/42/img/0"


def test_decode_rejects_wrong_type_and_bad_json(verdict: Verdict) -> None:
    _, value, headers = encode_verdict(verdict)
    with pytest.raises(EventError) as err:
        decode_dead_letter(value, headers)
    assert err.value.code is ErrorCode.SCHEMA_VIOLATION
    with pytest.raises(EventError) as err:
        decode_verdict(b"{nope")
    assert err.value.code is ErrorCode.INVALID_JSON
    with pytest.raises(EventError) as err:
        decode_verdict(b'{"label": "fake"}')
    assert err.value.code is ErrorCode.SCHEMA_VIOLATION


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_too_deep_metadata_header_is_invalid_json(depth: int) -> None:
    meta = '{"a":' * depth + "1" + "}" * depth
    headers = [*CE, JSON_CT, ("ce_metadata", meta.encode())]
    with pytest.raises(EventError) as err:  # was a RecursionError (an internal_error)
        parse_image_event(b'{"url": "https://img.example/a.png"}', headers)
    assert err.value.code == ErrorCode.INVALID_JSON and "metadata" in str(err.value)
