"""CloudEvents Kafka binding for synthscan: image events in, verdicts and dead letters out.

Image events are accepted in both modes of the binding:

- **binary**: attributes in ``ce_*`` headers; the value is either the image itself
  (``content-type: image/*``, image fields in extension headers ``ce_contentid``, ``ce_tenant``,
  ``ce_platform``, ``ce_sha256``, ``ce_sizebytes``, ``ce_metadata``) or :class:`ImageData` as JSON
  (``content-type: application/json``; extension headers fill fields the JSON leaves out);
- **structured**: ``content-type: application/cloudevents+json`` and the whole event as JSON,
  with ``data`` (an :class:`ImageData` object) or ``data_base64`` (the image, ``datacontenttype``
  ``image/*``, image fields as extension attributes). A value with no headers at all that is a
  JSON object with ``specversion`` is read as structured too.

Every failure raises :class:`EventError` whose ``code`` is the dead-letter reason.
Verdicts and dead letters are written in binary mode with a JSON value (their codecs live in
:mod:`schemas._outputs` and are re-exported here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from schemas._headers import (
    CE_PREFIX,
    CONTENT_TYPE,
    CONTEXT_ATTRIBUTES,
    STRUCTURED_JSON,
    Headers,
    HeadersLike,
    binary_headers,
    format_time,
    header_map,
    header_text,
    is_json_media,
    load_json_object,
    looks_like_json_object,
    media_type,
    sniff_image_mime,
    validation_message,
)
from schemas._outputs import (
    VERDICT_SOURCE,
    decode_dead_letter,
    decode_verdict,
    encode_dead_letter,
    encode_verdict,
)
from schemas._types import b64encode
from schemas.errors import ErrorCode, EventError
from schemas.image_event import ImageData, ImageEvent

__all__ = [
    "IMAGE_EXTENSIONS",
    "VERDICT_SOURCE",
    "Encoding",
    "Mode",
    "ParsedImageEvent",
    "decode_dead_letter",
    "decode_verdict",
    "encode_dead_letter",
    "encode_image_event",
    "encode_verdict",
    "parse_image_event",
]

Mode = Literal["binary", "structured"]
Encoding = Literal["raw", "base64", "url", "ref"]
"""How the image travelled: ``raw`` = it is the CloudEvent's data (binary value or structured
``data_base64``); ``base64`` = inside the ImageData JSON; ``url`` / ``ref`` = by reference."""

IMAGE_EXTENSIONS: Mapping[str, str] = {
    "contentid": "content_id",
    "tenant": "tenant",
    "platform": "platform",
    "sha256": "sha256",
    "sizebytes": "size_bytes",
    "metadata": "metadata",
}
"""CloudEvents extension attribute -> :class:`ImageData` field (``metadata`` is a JSON string)."""


@dataclass(frozen=True, slots=True)
class ParsedImageEvent:
    """A validated image event plus how it arrived."""

    event: ImageEvent
    mode: Mode
    encoding: Encoding
    extensions: Mapping[str, str] = field(default_factory=dict)
    """Extension attributes that are not image fields (e.g. ``traceparent``), as text."""

    @property
    def event_id(self) -> str:
        return self.event.id

    @property
    def content_id(self) -> str:
        """``data.content_id``, else the event subject, else the event id."""
        return self.event.data.content_id or self.event.subject or self.event.id

    @property
    def inline_bytes(self) -> bytes | None:
        """The image bytes when carried in the message (``raw`` or ``base64``), else None."""
        return self.event.data.data

    @property
    def url(self) -> str | None:
        return self.event.data.url

    @property
    def ref(self) -> str | None:
        return self.event.data.ref

    @property
    def sha256(self) -> str | None:
        """Declared sha256 (already verified for inline images; verify after a fetch)."""
        return self.event.data.sha256

    @property
    def size_bytes(self) -> int | None:
        """Declared size (already verified for inline images; verify after a fetch)."""
        return self.event.data.size_bytes


def parse_image_event(
    value: bytes | None, headers: HeadersLike, *, expected_types: Collection[str] | None = None
) -> ParsedImageEvent:
    """Parse and validate one Kafka message as an image CloudEvent (binary or structured).

    Inline images are checked against a declared ``sha256``/``size_bytes`` here.
    ``expected_types``, when given, restricts the accepted ``type`` attribute.
    Raises :class:`EventError` (invalid_json, schema_violation, unsupported_media,
    missing_image, checksum_mismatch).
    """
    hmap = header_map(headers)
    media = media_type(header_text(CONTENT_TYPE, hmap.get(CONTENT_TYPE)))
    if media is not None and media.startswith("application/cloudevents"):
        if media != STRUCTURED_JSON:
            raise EventError(ErrorCode.UNSUPPORTED_MEDIA, f"unsupported CloudEvents format {media}")
        parsed = _parse_structured(value)
    elif CE_PREFIX + "specversion" in hmap:
        parsed = _parse_binary(value, hmap, media)
    elif media in (None, "application/json") and looks_like_json_object(value):
        parsed = _parse_structured(value)
    elif _is_envelope(value):
        # Liberal accept: a JSON object with `specversion` is a structured event whatever the
        # content-type says (SDKs send the envelope under the *data's* type, e.g. image/png).
        parsed = _parse_structured(value, header_media=media)
    else:
        raise EventError(
            ErrorCode.SCHEMA_VIOLATION,
            "not a CloudEvent: no ce_specversion header and content-type is not "
            f"{STRUCTURED_JSON} (got {media})",
        )
    if expected_types is not None and parsed.event.type not in expected_types:
        raise EventError(ErrorCode.SCHEMA_VIOLATION, f"unexpected event type {parsed.event.type!r}")
    _check_inline(parsed.event.data)
    return parsed


def _parse_binary(
    value: bytes | None, hmap: dict[str, bytes | None], media: str | None
) -> ParsedImageEvent:
    attrs = {
        name[len(CE_PREFIX) :]: text
        for name, raw in hmap.items()
        if name.startswith(CE_PREFIX) and (text := header_text(name, raw)) is not None
    }
    attrs.pop("datacontenttype", None)  # binary mode: content-type header is authoritative
    context = {k: v for k, v in attrs.items() if k in CONTEXT_ATTRIBUTES}
    image_fields, others = _image_extensions({k: v for k, v in attrs.items() if k not in context})
    if media is None:
        if not looks_like_json_object(value):
            raise EventError(
                ErrorCode.UNSUPPORTED_MEDIA,
                "no content-type header: raw images need content-type image/*",
            )
        media = "application/json"
    if is_json_media(media):
        data = {**image_fields, **load_json_object(value, "value")}
        return _build(context, data, "binary", None, others)
    if media.startswith("image/"):
        if not value:
            raise EventError(ErrorCode.MISSING_IMAGE, "empty value with content-type " + media)
        return _build(
            context, {**image_fields, "data": value, "mime": media}, "binary", "raw", others
        )
    raise EventError(ErrorCode.UNSUPPORTED_MEDIA, f"unsupported content-type {media}")


def _is_envelope(value: bytes | None) -> bool:
    """The value is a JSON object with a ``specversion`` member (a structured CloudEvent)."""
    if not looks_like_json_object(value):
        return False
    try:
        obj = json.loads(value)  # type: ignore[arg-type]
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    return isinstance(obj, dict) and "specversion" in obj


def _parse_structured(value: bytes | None, header_media: str | None = None) -> ParsedImageEvent:
    """``header_media``: the Kafka content-type of an envelope sent under its data's type; it
    stands in for a missing ``datacontenttype`` of ``data_base64`` (an SDK moves it there)."""
    obj = load_json_object(value, "structured CloudEvent")
    context = {k: obj[k] for k in CONTEXT_ATTRIBUTES if k in obj}
    dct = obj.get("datacontenttype", header_media if "data_base64" in obj else None)
    media = media_type(dct) if isinstance(dct, str) else None
    reserved = {*CONTEXT_ATTRIBUTES, "datacontenttype", "data", "data_base64"}
    image_fields, others = _image_extensions({k: v for k, v in obj.items() if k not in reserved})
    if "data" in obj and "data_base64" in obj:
        raise EventError(ErrorCode.SCHEMA_VIOLATION, "give data or data_base64, not both")
    if "data_base64" in obj:
        if media is None or not media.startswith("image/"):
            raise EventError(
                ErrorCode.UNSUPPORTED_MEDIA, f"data_base64 needs datacontenttype image/*, got {dct}"
            )
        raw = _b64(obj["data_base64"])
        if not raw:
            raise EventError(ErrorCode.MISSING_IMAGE, "data_base64 is empty")
        data = {**image_fields, "data": raw, "mime": media}
        return _build(context, data, "structured", "raw", others)
    if media is not None and not is_json_media(media):
        raise EventError(ErrorCode.UNSUPPORTED_MEDIA, f"unsupported datacontenttype {media}")
    payload = obj.get("data")
    if payload is None:
        raise EventError(ErrorCode.MISSING_IMAGE, "structured event has no data")
    if not isinstance(payload, dict):
        raise EventError(ErrorCode.SCHEMA_VIOLATION, "data must be a JSON object")
    return _build(context, {**image_fields, **payload}, "structured", None, others)


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise EventError(ErrorCode.SCHEMA_VIOLATION, "data_base64 must be a string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise EventError(
            ErrorCode.SCHEMA_VIOLATION, f"data_base64: invalid base64: {exc}"
        ) from None


def _image_extensions(ext: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split extension attributes into ImageData fields and the rest (as text)."""
    fields: dict[str, Any] = {}
    others: dict[str, str] = {}
    for name, value in ext.items():
        target = IMAGE_EXTENSIONS.get(name)
        if target is None:
            try:
                others[name] = value if isinstance(value, str) else json.dumps(value)
            except (RecursionError, ValueError) as exc:  # nested too deep to re-encode
                raise EventError(ErrorCode.INVALID_JSON, f"extension {name}: {exc}") from None
            continue
        if target == "metadata" and isinstance(value, str):
            try:
                value = json.loads(value)
            except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: too deep
                raise EventError(ErrorCode.INVALID_JSON, f"metadata extension: {exc}") from None
        fields[target] = value
    return fields, others


def _build(
    context: dict[str, Any],
    data: dict[str, Any],
    mode: Mode,
    encoding: Encoding | None,
    others: dict[str, str],
) -> ParsedImageEvent:
    if "specversion" not in context:
        raise EventError(ErrorCode.SCHEMA_VIOLATION, "specversion: missing")
    try:
        event = ImageEvent.model_validate({**context, "data": data})
    except ValidationError as exc:
        raise EventError(ErrorCode.SCHEMA_VIOLATION, validation_message(exc)) from None
    kind = event.data.source_kind
    if kind is None:
        raise EventError(ErrorCode.MISSING_IMAGE, "the event gives no url, ref or inline image")
    if encoding is None:
        encoding = "base64" if kind == "inline" else kind
    return ParsedImageEvent(event=event, mode=mode, encoding=encoding, extensions=others)


def _check_inline(data: ImageData) -> None:
    if data.data is None:
        return
    if data.size_bytes is not None and data.size_bytes != len(data.data):
        raise EventError(
            ErrorCode.CHECKSUM_MISMATCH,
            f"inline image is {len(data.data)} bytes, event says {data.size_bytes}",
        )
    if data.sha256 is not None and hashlib.sha256(data.data).hexdigest() != data.sha256:
        raise EventError(ErrorCode.CHECKSUM_MISMATCH, "inline image sha256 differs from the event")


def encode_image_event(
    event: ImageEvent, *, mode: Mode = "binary", inline: Literal["raw", "base64"] = "raw"
) -> tuple[bytes, Headers]:
    """Encode an image event as a Kafka ``(value, headers)`` pair.

    ``inline`` only matters when the event carries image bytes (``data.data``): ``raw`` makes the
    image the CloudEvent's data (binary value / ``data_base64``), ``base64`` keeps it inside the
    ImageData JSON. Raw images need ``data.mime`` or a recognisable format.
    """
    data = event.data
    context = _context_strings(event)
    if inline == "raw" and data.data is not None:
        mime = data.mime or sniff_image_mime(data.data)
        if mime is None:
            raise ValueError("raw inline image needs data.mime (format not recognised)")
        ext = _extension_strings(data)
        if mode == "binary":
            headers = binary_headers(context, mime)
            headers[-1:-1] = [(CE_PREFIX + k, v.encode("utf-8")) for k, v in ext.items()]
            return data.data, headers
        obj: dict[str, Any] = {k: v for k, v in context.items() if v is not None}
        obj.update(ext)
        obj["datacontenttype"] = mime
        obj["data_base64"] = b64encode(data.data)
        return _compact(obj), [(CONTENT_TYPE, f"{STRUCTURED_JSON}; charset=utf-8".encode())]
    if mode == "binary":
        value = data.model_dump_json(exclude_none=True).encode("utf-8")
        return value, binary_headers(context, "application/json")
    obj = event.model_dump(mode="json", exclude_none=True)
    obj["datacontenttype"] = "application/json"
    return _compact(obj), [(CONTENT_TYPE, f"{STRUCTURED_JSON}; charset=utf-8".encode())]


def _context_strings(event: ImageEvent) -> dict[str, str | None]:
    return {
        "specversion": event.specversion,
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": format_time(event.time) if event.time is not None else None,
        "subject": event.subject,
        "dataschema": event.dataschema,
    }


def _extension_strings(data: ImageData) -> dict[str, str]:
    values = {
        "contentid": data.content_id,
        "tenant": data.tenant,
        "platform": data.platform,
        "sha256": data.sha256,
        "sizebytes": str(data.size_bytes) if data.size_bytes is not None else None,
        "metadata": json.dumps(data.metadata, separators=(",", ":")) if data.metadata else None,
    }
    return {k: v for k, v in values.items() if v is not None}


def _compact(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
