"""``python -m consumer tail`` against the real broker: a line per verdict and dead letter."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from kafka_support import create_topics, unique

from consumer.tail_command import tail
from schemas import ErrorCode, SourceCoordinates, encode_dead_letter, encode_verdict
from schemas.dead_letter import build_dead_letter
from tests.schemas.schema_builders import make_verdict

pytestmark = pytest.mark.kafka


def test_tail_prints_a_line_per_verdict_and_dead_letter(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = unique("tail")
    create_topics(kafka_bootstrap, {topic: 1})
    dead = build_dead_letter(
        code=ErrorCode.INVALID_JSON,
        message="not JSON",
        key=b"k",
        headers=None,
        value=b"{",
        source=SourceCoordinates(topic="uploads", partition=0, offset=5, timestamp_ms=1),
        consumer_group="g",
        event_id="evt-2",
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for key, value, headers in (encode_verdict(make_verdict(0.9)), encode_dead_letter(dead)):
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0

    assert tail(kafka_bootstrap, topic, count=2, timeout_s=30) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("evt-1  ") and "score=0.9000" in lines[0]
    assert "top patch #1 (10, 20, 138, 148)" in lines[0]
    assert lines[1] == "evt-2  DEAD-LETTER  invalid_json  not JSON"
    assert tail(kafka_bootstrap, topic, count=3, timeout_s=2) == 1  # fewer than asked: exit 1
