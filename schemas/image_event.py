"""The image event: a CloudEvent announcing an uploaded image, by reference or inline.

Wire forms (see ``docs/events.md`` and :mod:`schemas.cloudevents`):

- structured mode: the whole :class:`ImageEvent` as JSON (``application/cloudevents+json``);
- binary mode, JSON value: the ``ce_*`` headers carry the CloudEvent attributes and the value is
  :class:`ImageData` as JSON;
- binary mode, raw value: the value is the image itself (``content-type: image/*``) and the image
  fields travel as CloudEvent extension headers (``ce_contentid``, ``ce_tenant``, ...).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue, model_validator

from schemas._types import (
    Base64Bytes,
    NonEmptyStr,
    Sha256Hex,
    ShortStr,
    UtcDatetime,
    WireModel,
)

IMAGE_EVENT_TYPE = "io.synthscan.image.v1"
"""The CloudEvents ``type`` producers should use for image events (others are accepted)."""
MAX_METADATA_BYTES = 8 * 1024
"""Upper bound of the compact UTF-8 JSON encoding of ``metadata``."""
MAX_URL_LENGTH = 4096


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("url scheme must be http or https")
    if not parts.hostname:
        raise ValueError("url needs a host")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError("url must not contain whitespace or control characters")
    return value


HttpUrlStr = Annotated[
    str,
    Field(min_length=8, max_length=MAX_URL_LENGTH, examples=["https://cdn.example.com/u/42.jpg"]),
    AfterValidator(_check_http_url),
]
"""An absolute http(s) URL, kept exactly as given (no normalisation)."""


def _check_object_key(value: str) -> str:
    if value.startswith("/") or "\\" in value or "://" in value:
        raise ValueError("ref must be a relative object key (no leading '/', scheme or '\\')")
    if ".." in value.split("/"):
        raise ValueError("ref must not contain '..' segments")
    if any(ord(ch) < 0x20 for ch in value):
        raise ValueError("ref must not contain control characters")
    return value


ObjectKey = Annotated[
    str,
    Field(min_length=1, max_length=1024, examples=["uploads/2026/11/22/42.jpg"]),
    AfterValidator(_check_object_key),
]
"""An object-store key, resolved by the consumer against its configured base URL."""


def _lower(value: Any) -> Any:
    return value.lower().strip() if isinstance(value, str) else value


MediaType = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_!#$&^.+-]*/[A-Za-z0-9][A-Za-z0-9_!#$&^.+-]*$",
        max_length=127,
    ),
    BeforeValidator(_lower),
]
"""A MIME type without parameters, lower-cased, e.g. ``image/jpeg``."""


def _check_metadata_size(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    try:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None
    size = len(encoded.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON, limit {MAX_METADATA_BYTES}")
    return value


Metadata = Annotated[dict[str, JsonValue], AfterValidator(_check_metadata_size)]
"""Free JSON object, at most ``MAX_METADATA_BYTES`` as compact UTF-8 JSON."""

ImageSourceKind = Literal["url", "ref", "inline"]


class ImageData(WireModel):
    """The ``data`` of an image event: which image, where to get it, and whose it is.

    At most one of ``url``, ``ref`` and ``data`` is set; none only when the image is the raw
    Kafka value (binary mode with ``content-type: image/*``).
    """

    schema_version: Literal[1] = 1
    """Major version of this payload; additive changes keep it."""
    content_id: NonEmptyStr | None = None
    """The platform's id of the uploaded content (verdict key when there is no sha256)."""
    tenant: ShortStr | None = None
    """The customer / tenant the content belongs to."""
    platform: ShortStr | None = None
    """The product surface the upload came from (e.g. ``photos``, ``chat``)."""
    url: HttpUrlStr | None = None
    """Claim-check: an http(s) URL the consumer fetches the image from."""
    ref: ObjectKey | None = None
    """Claim-check: an object-store key, resolved against the consumer's object base URL."""
    data: Base64Bytes | None = None
    """Inline image bytes, base64 in JSON (small images only: Kafka messages are ~1 MB)."""
    sha256: Sha256Hex | None = None
    """SHA-256 of the image bytes; checked when present."""
    size_bytes: Annotated[int, Field(ge=0)] | None = None
    """Size of the image bytes; checked when present."""
    mime: MediaType | None = None
    """Declared media type of the image, e.g. ``image/jpeg`` (informative; content is sniffed)."""
    metadata: Metadata = Field(default_factory=dict)
    """Free-form JSON passed through to the verdict's audit trail (bounded size)."""

    @model_validator(mode="after")
    def _one_image_source(self) -> ImageData:
        given = [name for name in ("url", "ref", "data") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of url, ref, data (got {', '.join(given)})")
        return self

    @property
    def source_kind(self) -> ImageSourceKind | None:
        """Where the image is: ``url``, ``ref``, ``inline`` or None (not in this payload)."""
        if self.url is not None:
            return "url"
        if self.ref is not None:
            return "ref"
        if self.data is not None:
            return "inline"
        return None


class ImageEvent(WireModel):
    """An image CloudEvent (CloudEvents 1.0); its structured-mode JSON form.

    ``datacontenttype`` is not kept: the codec checks it on the way in and derives it on the way
    out (``application/json`` for a ``data`` object, the image type for ``data_base64``).
    The payload version is ``data.schema_version`` (CloudEvents attribute names may not contain
    ``_``, so the envelope carries none of its own; :attr:`schema_version` mirrors it).
    """

    specversion: Literal["1.0"] = "1.0"
    """CloudEvents spec version."""
    id: ShortStr
    """Event id, unique per source (producers use a UUID); retries of one upload keep it."""
    source: NonEmptyStr
    """URI-reference of the producer, e.g. ``/platform/photos/uploader``."""
    type: ShortStr = IMAGE_EVENT_TYPE
    """Event type; ``io.synthscan.image.v1`` by convention."""
    time: UtcDatetime | None = None
    """When the upload happened (RFC 3339); used for end-to-end latency."""
    subject: NonEmptyStr | None = None
    """Subject of the event within the source, e.g. the content id."""
    dataschema: NonEmptyStr | None = None
    """Optional URI of the schema ``data`` adheres to."""
    data: ImageData
    """The image and its context."""

    @property
    def schema_version(self) -> int:
        """Version of the payload (``data.schema_version``)."""
        return self.data.schema_version
