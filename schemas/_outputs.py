"""Verdict and dead-letter records: binary-mode CloudEvents with a JSON value (and back)."""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import ValidationError

from schemas._headers import (
    CE_PREFIX,
    Headers,
    HeadersLike,
    binary_headers,
    format_time,
    header_map,
    header_text,
    load_json_object,
    validation_message,
)
from schemas._types import WireModel
from schemas.dead_letter import DEAD_LETTER_EVENT_TYPE, DeadLetter
from schemas.errors import ErrorCode, EventError
from schemas.verdict import VERDICT_EVENT_TYPE, Verdict

__all__ = [
    "VERDICT_SOURCE",
    "decode_dead_letter",
    "decode_verdict",
    "encode_dead_letter",
    "encode_verdict",
]

VERDICT_SOURCE = "urn:synthscan:consumer"

M = TypeVar("M", bound=WireModel)


def encode_verdict(
    verdict: Verdict,
    *,
    source: str = VERDICT_SOURCE,
    key_by: Literal["sha256", "content_id"] = "sha256",
) -> tuple[bytes, bytes, Headers]:
    """``(key, value, headers)`` of a verdict record, binary mode with a JSON value.

    The key is the image sha256 (hex) by default (what the compacted latest-verdict topic is
    keyed by), or the content id.
    """
    attrs = {
        "specversion": "1.0",
        "id": verdict.verdict_id,
        "source": source,
        "type": VERDICT_EVENT_TYPE,
        "time": format_time(verdict.produced_at),
        "subject": verdict.content_id,
        "label": verdict.label,
    }
    value = verdict.model_dump_json().encode("utf-8")
    key = verdict.key if key_by == "sha256" else verdict.content_id.encode("utf-8")
    return key, value, binary_headers(attrs, "application/json")


def encode_dead_letter(
    dead_letter: DeadLetter, *, source: str = VERDICT_SOURCE
) -> tuple[bytes | None, bytes, Headers]:
    """``(key, value, headers)`` of a dead-letter record: key = the original key."""
    attrs = {
        "specversion": "1.0",
        "id": dead_letter.dead_letter_id,
        "source": source,
        "type": DEAD_LETTER_EVENT_TYPE,
        "time": format_time(dead_letter.last_failure_at),
        "subject": dead_letter.content_id,
        "errorcode": dead_letter.code.value,
    }
    value = dead_letter.model_dump_json().encode("utf-8")
    return dead_letter.original.key, value, binary_headers(attrs, "application/json")


def decode_verdict(value: bytes | None, headers: HeadersLike = None) -> Verdict:
    """Read a verdict record (checks ``ce_type`` when headers are given)."""
    return _decode(Verdict, value, headers, VERDICT_EVENT_TYPE)


def decode_dead_letter(value: bytes | None, headers: HeadersLike = None) -> DeadLetter:
    """Read a dead-letter record (checks ``ce_type`` when headers are given)."""
    return _decode(DeadLetter, value, headers, DEAD_LETTER_EVENT_TYPE)


def _decode(model: type[M], value: bytes | None, headers: HeadersLike, ce_type: str) -> M:
    hmap = header_map(headers)
    found = header_text(CE_PREFIX + "type", hmap.get(CE_PREFIX + "type"))
    if headers and found != ce_type:
        raise EventError(ErrorCode.SCHEMA_VIOLATION, f"expected ce_type {ce_type}, got {found}")
    obj = load_json_object(value, "value")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise EventError(ErrorCode.SCHEMA_VIOLATION, validation_message(exc)) from None
