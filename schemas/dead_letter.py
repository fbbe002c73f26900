"""The dead letter: an input that could not become a verdict, kept whole (or by reference)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas._types import Base64Bytes, NonEmptyStr, Sha256Hex, ShortStr, UtcDatetime, WireModel
from schemas.errors import ErrorCode
from schemas.verdict import SourceCoordinates

DEAD_LETTER_EVENT_TYPE = "io.synthscan.deadletter.v1"
"""CloudEvents ``type`` of dead-letter records."""
MAX_INLINE_VALUE_BYTES = 512 * 1024
"""Original values above this size are kept by reference (coordinates + sha256 + size)."""
MAX_MESSAGE_CHARS = 4096

HeaderValue = bytes | str | None


class Header(WireModel):
    """One Kafka header, verbatim (order and duplicates are kept)."""

    key: str
    value: Base64Bytes | None = None


class OriginalMessage(WireModel):
    """The input message as it was read from Kafka."""

    key: Base64Bytes | None = None
    headers: list[Header] = Field(default_factory=list)
    value: Base64Bytes | None = None
    """The value, when at most ``MAX_INLINE_VALUE_BYTES``; else None and ``value_ref`` is set.

    With ``value_truncated`` only its first bytes (to fit the dead-letter topic)."""
    value_size_bytes: Annotated[int, Field(ge=0)] = 0
    value_sha256: Sha256Hex | None = None
    """SHA-256 of the value (None only for a null value)."""
    value_ref: NonEmptyStr | None = None
    """Where the omitted value can be read: ``kafka://topic/partition/offset`` or an object key."""
    value_truncated: bool = False
    """``value`` holds a prefix only; ``value_size_bytes`` and ``value_sha256`` are of the whole."""
    headers_omitted: Annotated[int, Field(ge=0)] = 0
    """How many headers were left out so that the dead letter fits the producer's size limit."""
    key_omitted: bool = False
    """The key was left out (too large to fit); the source coordinates still locate it."""

    @model_validator(mode="after")
    def _value_or_ref(self) -> OriginalMessage:
        if self.value is not None and self.value_ref is not None:
            raise ValueError("give value or value_ref, not both")
        return self

    @property
    def value_omitted(self) -> bool:
        """True when the value was too large to keep inline."""
        return self.value is None and self.value_ref is not None


class DeadLetter(WireModel):
    """Why one input message produced no verdict, with everything needed to retry it."""

    schema_version: Literal[1] = 1
    """Major version of this payload; additive changes keep it."""
    dead_letter_id: ShortStr = Field(default_factory=lambda: str(uuid.uuid4()))
    """Unique id of this record (its CloudEvent id)."""
    code: ErrorCode
    """The reason, from a closed set."""
    message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]
    """Human-readable detail (truncated)."""
    original: OriginalMessage
    source: SourceCoordinates
    attempts: Annotated[int, Field(ge=1)] = 1
    """How many times processing (including fetch retries) was tried."""
    first_failure_at: UtcDatetime
    last_failure_at: UtcDatetime
    consumer_group: ShortStr
    consumer_instance: ShortStr | None = None
    """Pod / process that gave up on the message."""
    event_id: ShortStr | None = None
    """The image event id, when parsing got that far."""
    content_id: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _ordered_times(self) -> DeadLetter:
        if self.last_failure_at < self.first_failure_at:
            raise ValueError("last_failure_at is before first_failure_at")
        return self


def _header_bytes(value: HeaderValue) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value


def original_message(
    key: bytes | None,
    headers: Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None,
    value: bytes | None,
    source: SourceCoordinates,
    *,
    max_inline_bytes: int = MAX_INLINE_VALUE_BYTES,
    truncate_value_to: int | None = None,
    keep_headers: bool = True,
    keep_key: bool = True,
) -> OriginalMessage:
    """Capture a Kafka message; values over ``max_inline_bytes`` are kept by reference.

    ``truncate_value_to``, ``keep_headers`` and ``keep_key`` shrink the capture so that the
    dead letter fits a size limit; the hash and size always describe the whole value.
    """
    items = list(headers.items() if isinstance(headers, Mapping) else (headers or []))
    kept = [Header(key=k, value=_header_bytes(v)) for k, v in items] if keep_headers else []
    size = len(value) if value is not None else 0
    digest = hashlib.sha256(value).hexdigest() if value is not None else None
    too_large = value is not None and size > max_inline_bytes
    truncated = (
        value is not None
        and not too_large
        and truncate_value_to is not None
        and size > truncate_value_to
    )
    inline = value
    if too_large:
        inline = None
    elif truncated and value is not None and truncate_value_to is not None:
        inline = value[: max(0, truncate_value_to)]
    ref = f"kafka://{source.topic}/{source.partition}/{source.offset}" if too_large else None
    return OriginalMessage(
        key=key if keep_key else None,
        headers=kept,
        value=inline,
        value_size_bytes=size,
        value_sha256=digest,
        value_ref=ref,
        value_truncated=truncated,
        headers_omitted=len(items) - len(kept),
        key_omitted=key is not None and not keep_key,
    )


def build_dead_letter(
    *,
    code: ErrorCode,
    message: str,
    key: bytes | None,
    headers: Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue] | None,
    value: bytes | None,
    source: SourceCoordinates,
    consumer_group: str,
    consumer_instance: str | None = None,
    attempts: int = 1,
    first_failure_at: datetime | None = None,
    last_failure_at: datetime | None = None,
    event_id: str | None = None,
    content_id: str | None = None,
    max_inline_bytes: int = MAX_INLINE_VALUE_BYTES,
    truncate_value_to: int | None = None,
    keep_headers: bool = True,
    keep_key: bool = True,
) -> DeadLetter:
    """A dead letter for one input message (times default to now; message is truncated).

    See :func:`original_message` for the arguments that shrink the captured original.
    """
    now = datetime.now(UTC)
    last = last_failure_at or now
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return DeadLetter(
        code=code,
        message=message,
        original=original_message(
            key,
            headers,
            value,
            source,
            max_inline_bytes=max_inline_bytes,
            truncate_value_to=truncate_value_to,
            keep_headers=keep_headers,
            keep_key=keep_key,
        ),
        source=source,
        attempts=attempts,
        first_failure_at=first_failure_at or last,
        last_failure_at=last,
        consumer_group=consumer_group,
        consumer_instance=consumer_instance,
        event_id=event_id,
        content_id=content_id,
    )
