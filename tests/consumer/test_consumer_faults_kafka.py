"""Regression tests of issue 10 against the real broker: poison headers, undeliverable output,
pause state across a broker restart, exactly-once transaction budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from consumer_support import TopicReader, Topics, encode, image_event, produce, wait_committed
from kafka_support import end_offsets, image_bytes, sha
from raw_kafka import produce_raw

from consumer import Service
from detector import Detector
from schemas import ErrorCode

pytestmark = pytest.mark.kafka

BAD_HEADER_NAME = b"\xff\xfe-not-utf8"


def _events(ids: list[str]) -> list[tuple[bytes, bytes, list]]:
    out = []
    for i, eid in enumerate(ids):
        img = image_bytes(100 + i)
        value, headers = encode(image_event(eid, data=img, sha256=sha(img), size=len(img)))
        out.append((eid.encode(), value, headers))
    return out


def produce_bad_header(bootstrap: str, topic: str, partition: int = 0) -> None:
    """A valid-looking image event plus one header whose name is not UTF-8."""
    img = image_bytes(7)
    value, headers = encode(image_event("poison", data=img, sha256=sha(img), size=len(img)))
    raw = [(k.encode(), v if isinstance(v, bytes) else str(v).encode()) for k, v in headers]
    produce_raw(bootstrap, topic, value, [*raw, (BAD_HEADER_NAME, b"x")], partition=partition)


def test_a_header_name_that_is_not_utf8_becomes_a_dead_letter_not_a_crash(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
) -> None:
    topics = topics_factory(1)
    produce(topics.bootstrap, topics.input, _events(["a-0", "a-1"]))
    produce_bad_header(topics.bootstrap, topics.input)
    produce(topics.bootstrap, topics.input, _events(["b-0", "b-1"]))

    service = run_service(topics.settings(checkpoint), detector=detector)
    verdicts = TopicReader(topics.bootstrap, topics.verdicts)
    dlq = TopicReader(topics.bootstrap, topics.dlq)
    verdicts.read_until(4, timeout=60)
    dlq.read_until(1, timeout=30)
    assert wait_committed(topics) == end_offsets(topics.bootstrap, topics.input, 1)
    assert service.error is None
    assert sorted(v.event_id for v in verdicts.verdicts()) == ["a-0", "a-1", "b-0", "b-1"]
    [dead] = dlq.dead_letters()
    assert dead.code == ErrorCode.SCHEMA_VIOLATION
    assert "header" in dead.message and dead.source.offset == 2
    assert dead.original.value_sha256 is not None  # the value is kept, the headers cannot be
    verdicts.close()
    dlq.close()
