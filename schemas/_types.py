"""Building blocks shared by the wire models: the base class and constrained field types."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)


class WireModel(BaseModel):
    """Base of every model on the wire: immutable, documented, tolerant of unknown fields.

    Unknown fields are ignored (not rejected) so that an older reader accepts messages from a
    newer writer that added optional fields: additive changes stay backward compatible.
    """

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )


def _decode_b64(value: Any) -> Any:
    """Strings are standard base64 (RFC 4648, padded); bytes given in Python are taken as is."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"invalid base64: {exc}") from None
    return value


def b64encode(data: bytes) -> str:
    """Standard padded base64 without line breaks (the encoding used for every bytes field)."""
    return base64.b64encode(data).decode("ascii")


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_decode_b64),
    PlainSerializer(b64encode, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]
"""Bytes carried as standard base64 text in JSON."""


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Sha256Hex = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    ),
    BeforeValidator(_lower),
]
"""A SHA-256 digest as 64 lowercase hex characters (upper case is accepted and lowered)."""


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _format_utc(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(_format_utc, return_type=str, when_used="json"),
]
"""An RFC 3339 timestamp with an offset; normalised to UTC and written with a ``Z`` suffix."""

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=1024)]
"""A non-empty string of at most 1024 characters."""

ShortStr = Annotated[str, Field(min_length=1, max_length=256)]
"""A non-empty string of at most 256 characters (ids, names, versions)."""

NonNegativeMs = Annotated[float, Field(ge=0.0)]
"""A duration in milliseconds."""

UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]
"""A probability or weight in [0, 1]."""
