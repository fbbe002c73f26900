"""Model invariants: what the wire models accept and refuse, and JSON round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from schema_builders import PNG, make_verdict

import schemas
from schemas import (
    MAX_INLINE_VALUE_BYTES,
    Box,
    DeadLetter,
    ErrorCode,
    ImageData,
    ImageEvent,
    SourceCoordinates,
    Verdict,
    build_dead_letter,
    label_for,
)

SRC = SourceCoordinates(topic="uploads", partition=1, offset=7, timestamp_ms=1_700_000_000_000)


def test_public_api_is_pinned() -> None:
    """Like httpx: the package re-exports its private modules; removing a name is a break."""
    assert all(hasattr(schemas, name) for name in schemas.__all__)
    assert {
        "ImageEvent",
        "ImageData",
        "ParsedImageEvent",
        "Verdict",
        "DeadLetter",
        "ErrorCode",
        "EventError",
        "parse_image_event",
        "encode_image_event",
        "encode_verdict",
        "decode_verdict",
        "encode_dead_letter",
        "decode_dead_letter",
        "build_dead_letter",
        "label_for",
        "Patch",
        "Box",
        "ModelStamp",
        "SourceCoordinates",
        "Timings",
        "ReplayInfo",
        "ImageInfo",
    } <= set(schemas.__all__)


@pytest.mark.parametrize(
    "fields",
    [
        {"url": "https://a.io/x", "ref": "k"},
        {"url": "https://a.io/x", "data": PNG},
        {"url": "javascript:alert(1)"},
        {"url": "https:///nohost"},
        {"url": "https://a.io/x y"},
        {"ref": "/abs/key"},
        {"ref": "s3://bucket/key"},
        {"ref": "a/../b"},
        {"url": "https://a.io/x", "sha256": "g" * 64},
        {"url": "https://a.io/x", "mime": "not a mime"},
        {"url": "https://a.io/x", "metadata": {"f": float("nan")}},
        {"url": "https://a.io/x", "metadata": {"big": "é" * 4097}},  # 8194 bytes as UTF-8
        {"url": "https://a.io/x", "schema_version": 2},
    ],
)
def test_image_data_refuses(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ImageData.model_validate(fields)


def test_image_data_normalises_and_ignores_unknown_fields() -> None:
    data = ImageData.model_validate(
        {"url": "https://a.io/x", "sha256": "AB" * 32, "mime": "Image/JPEG", "future_field": 1}
    )
    assert data.sha256 == "ab" * 32
    assert data.mime == "image/jpeg"
    assert data.source_kind == "url"
    assert ImageData(metadata={"big": "x" * 8000}).metadata  # under the 8 KiB bound


def test_image_event_time_normalised_to_utc() -> None:
    event = ImageEvent.model_validate(
        {"id": "e", "source": "s", "time": "2026-11-22T01:00:00+01:00", "data": {}}
    )
    assert event.time == datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert '"time":"2026-11-22T00:00:00Z"' in event.model_dump_json()
    assert event.schema_version == 1


@given(score=st.floats(0, 1), threshold=st.floats(0, 1))
def test_label_rule(score: float, threshold: float) -> None:
    verdict = make_verdict(score=score, threshold=threshold)
    assert (verdict.label == "synthetic") == (score >= threshold)
    assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict


@pytest.mark.parametrize(
    "overrides",
    [
        {"label": "real"},  # contradicts score 0.8 >= 0.5
        {"score": 1.5, "label": "synthetic"},
        {
            "patches": [
                {"rank": 2, "box": (0, 0, 5, 5), "window": 3, "activation": 1, "attention": 0.1}
            ]
        },
        {
            "patches": [
                {"rank": 1, "box": (0, 0, 641, 5), "window": 3, "activation": 1, "attention": 0.1}
            ]
        },
        {
            "patches": [
                {"rank": 1, "box": (5, 0, 5, 5), "window": 3, "activation": 1, "attention": 0.1}
            ]
        },
        {
            "patches": [
                {"rank": 1, "box": (0, 0, 5, 5), "window": 4, "activation": 1, "attention": 0.1}
            ]
        },
        {"global_attention": float("inf")},
        {"produced_at": "2026-11-22T00:00:00"},
    ],
)
def test_verdict_refuses(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_verdict(**overrides)


def test_verdict_optional_fields_default(verdict: Verdict) -> None:
    assert verdict.cached is False and verdict.replay is None and verdict.schema_version == 1
    replayed = make_verdict(
        cached=True,
        replay={"run_id": "r1", "model_version": "1.1.0", "started_at": "2026-11-22T00:00:00Z"},
    )
    assert Verdict.model_validate_json(replayed.model_dump_json()) == replayed
    assert Box.model_validate([1, 2, 3, 4]).as_tuple() == (1, 2, 3, 4)
    assert label_for(0.5, 0.5) == "synthetic" and label_for(0.49, 0.5) == "real"


def test_dead_letter_keeps_small_values_inline() -> None:
    headers = [("ce_id", b"e"), ("bin", b"\x00\xff"), ("null", None), ("ce_id", b"dup")]
    dl = build_dead_letter(
        code=ErrorCode.INVALID_JSON,
        message="bad",
        key=b"k1",
        headers=headers,
        value=b"{",
        source=SRC,
        consumer_group="synthscan",
        consumer_instance="pod-0",
    )
    assert dl.original.value == b"{" and not dl.original.value_omitted
    assert [(h.key, h.value) for h in dl.original.headers] == headers  # order and duplicates kept
    assert dl.first_failure_at == dl.last_failure_at
    again = DeadLetter.model_validate_json(dl.model_dump_json())
    assert again == dl


def test_dead_letter_refers_to_large_values() -> None:
    value = b"x" * (MAX_INLINE_VALUE_BYTES + 1)
    dl = build_dead_letter(
        code=ErrorCode.IMAGE_TOO_LARGE,
        message="m" * 10_000,
        key=None,
        headers=None,
        value=value,
        source=SRC,
        consumer_group="g",
        attempts=3,
    )
    assert dl.original.value is None and dl.original.value_omitted
    assert dl.original.value_ref == "kafka://uploads/1/7"
    assert dl.original.value_size_bytes == len(value)
    assert len(dl.original.value_sha256 or "") == 64
    assert len(dl.message) == 4096


def test_dead_letter_refuses() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValidationError):
        build_dead_letter(
            code=ErrorCode.FETCH_FAILED,
            message="m",
            key=None,
            headers=None,
            value=None,
            source=SRC,
            consumer_group="g",
            first_failure_at=now,
            last_failure_at=now - timedelta(seconds=1),
        )
    with pytest.raises(ValidationError):
        DeadLetter.model_validate(
            {
                "code": "not_a_code",
                "message": "m",
                "original": {},
                "source": SRC.model_dump(),
                "first_failure_at": now,
                "last_failure_at": now,
                "consumer_group": "g",
            }
        )


def test_error_codes_are_stable() -> None:
    """The enum is part of the contract: values may be added, never renamed or removed."""
    assert {c.value for c in ErrorCode} >= {
        "invalid_json",
        "schema_violation",
        "unsupported_media",
        "missing_image",
        "image_decode_error",
        "image_too_large",
        "fetch_failed",
        "fetch_forbidden",
        "fetch_timeout",
        "fetch_too_large",
        "checksum_mismatch",
        "inference_failed",
        "internal_error",
    }
