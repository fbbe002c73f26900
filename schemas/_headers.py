"""Kafka header handling for the CloudEvents binding: normalising, decoding, building."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas.errors import ErrorCode, EventError

HeaderValue = bytes | str | None
HeadersLike = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None
"""What the codecs accept: confluent-kafka's ``msg.headers()`` list (or None), or a dict."""
Headers = list[tuple[str, bytes]]
"""What the codecs produce: confluent-kafka's ``headers=`` argument form."""

CE_PREFIX = "ce_"
CONTENT_TYPE = "content-type"
STRUCTURED_JSON = "application/cloudevents+json"
CONTEXT_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "dataschema")
"""CloudEvents context attributes kept on the models (``datacontenttype`` is handled apart)."""


def header_map(headers: HeadersLike) -> dict[str, bytes | None]:
    """Headers by lower-cased name; a repeated ``ce_*`` or content-type header is refused."""
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    out: dict[str, bytes | None] = {}
    for name, value in items:
        key = name.lower()
        if key in out and (key.startswith(CE_PREFIX) or key == CONTENT_TYPE):
            raise EventError(ErrorCode.SCHEMA_VIOLATION, f"header {name!r} appears more than once")
        raw = value.encode("utf-8") if isinstance(value, str) else value
        out.setdefault(key, raw)
    return out


def header_text(name: str, raw: bytes | None) -> str | None:
    """A header value as UTF-8 text (None for a null header)."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError(ErrorCode.SCHEMA_VIOLATION, f"header {name!r} is not UTF-8") from None


def media_type(content_type: str | None) -> str | None:
    """``"Image/JPEG; q=1"`` -> ``"image/jpeg"``; None or blank -> None."""
    if content_type is None:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return media or None


def is_json_media(media: str) -> bool:
    """``application/json`` or any ``+json`` structured-syntax type."""
    return media in ("application/json", "text/json") or media.endswith("+json")


def looks_like_json_object(value: bytes | None) -> bool:
    """Cheap sniff: the value starts (after whitespace) with ``{``."""
    return bool(value) and value.lstrip()[:1] == b"{"  # type: ignore[union-attr]


def load_json_object(value: bytes | None, what: str) -> dict[str, Any]:
    """Parse a JSON object or raise ``invalid_json`` / ``schema_violation``."""
    if not value:
        raise EventError(ErrorCode.INVALID_JSON, f"{what} is empty")
    try:
        obj = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise EventError(ErrorCode.INVALID_JSON, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EventError(ErrorCode.SCHEMA_VIOLATION, f"{what} must be a JSON object")
    return obj


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix."""
    return value.isoformat().replace("+00:00", "Z")


def validation_message(exc: ValidationError, limit: int = 5) -> str:
    """A short, input-free summary of a pydantic error (never echoes image bytes)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def binary_headers(attributes: Mapping[str, str | None], content_type: str) -> Headers:
    """``ce_*`` headers for the non-None attributes, then ``content-type``."""
    headers = [
        (CE_PREFIX + name, value.encode("utf-8"))
        for name, value in attributes.items()
        if value is not None
    ]
    headers.append((CONTENT_TYPE, content_type.encode("utf-8")))
    return headers


_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"ftypavif", 4, "image/avif"),
    (b"ftypheic", 4, "image/heic"),
)


def sniff_image_mime(data: bytes) -> str | None:
    """The media type of common image formats from their magic bytes, else None (the one
    magic-byte table: :mod:`provenance.c2pa_source` sniffs with it too)."""
    for magic, offset, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            if mime == "image/webp" and data[:4] != b"RIFF":
                continue
            return mime
    return None
