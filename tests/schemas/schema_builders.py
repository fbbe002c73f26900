"""Builders of valid wire objects shared by the schemas tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from schemas import (
    Box,
    ImageInfo,
    ModelStamp,
    Patch,
    SourceCoordinates,
    Timings,
    Verdict,
    label_for,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(56))
PNG_SHA = hashlib.sha256(PNG).hexdigest()


def make_verdict(score: float = 0.8, threshold: float = 0.5, **overrides: object) -> Verdict:
    """A valid verdict with two patches on a 640x480 image."""
    fields: dict[str, object] = {
        "verdict_id": "7d1c9a8e-0000-4000-8000-000000000001",
        "event_id": "evt-1",
        "content_id": "post/42/img/0",
        "tenant": "acme",
        "label": label_for(score, threshold),
        "score": score,
        "threshold": threshold,
        "patches": [
            Patch(
                rank=1,
                box=Box(x0=10, y0=20, x1=138, y1=148),
                window=3,
                activation=2.5,
                attention=0.31,
            ),
            Patch(
                rank=2,
                box=Box(x0=300, y0=200, x1=385, y1=285),
                window=2,
                activation=1.25,
                attention=0.12,
            ),
        ],
        "global_attention": 0.57,
        "image": ImageInfo(sha256=PNG_SHA, width=640, height=480, format="PNG", size_bytes=64),
        "model": ModelStamp(
            name="glff-mobilenet_v2",
            version="1.0.0",
            weights_sha256="ab" * 32,
            threshold=threshold,
            preprocessing_version="1",
            torch_version="2.5.0",
            torchvision_version="0.20.0",
            device="cpu",
            precision="fp32",
        ),
        "source": SourceCoordinates(topic="uploads", partition=3, offset=1042, timestamp_ms=1),
        "timings": Timings(queue_ms=4.5, fetch_ms=12.0, decode_ms=3.25, inference_ms=41.0),
        "produced_at": datetime(2026, 11, 22, 0, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return Verdict.model_validate(fields)
