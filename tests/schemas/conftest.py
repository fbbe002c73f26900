"""Fixtures of the schemas tests: a valid verdict and an inline PNG image event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from schema_builders import PNG, PNG_SHA, make_verdict

from schemas import ImageData, ImageEvent, Verdict


@pytest.fixture
def verdict() -> Verdict:
    return make_verdict()


@pytest.fixture
def png_event() -> ImageEvent:
    return ImageEvent(
        id="evt-1",
        source="/platform/photos",
        time=datetime(2026, 11, 22, 0, 5, tzinfo=UTC),
        subject="post/42/img/0",
        data=ImageData(
            content_id="post/42/img/0",
            tenant="acme",
            platform="photos",
            data=PNG,
            mime="image/png",
            sha256=PNG_SHA,
            size_bytes=len(PNG),
            metadata={"uploader": "u1", "tags": ["a", "b"]},
        ),
    )
