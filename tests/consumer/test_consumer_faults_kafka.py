"""Regression tests of issue 10 against the real broker: poison headers, an oversized dead
letter (the undeliverable record is in ``test_consumer_behaviour.py``, on both backends)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from consumer_support import (
    TopicReader,
    Topics,
    encode,
    image_event,
    produce,
    wait_committed,
)
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


_READ_ALL = """
import sys
from confluent_kafka import Consumer
from consumer.kafka.convert import consumed
bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "warm", "auto.offset.reset": "earliest"})
c.subscribe([topic])
seen = 0
while seen < expected:
    msg = c.poll(10)
    if msg is None or msg.error():
        continue
    record = consumed(msg)
    seen += 1
    if record.header_error is not None:
        print("poison", record.offset, record.header_error, flush=True)
c.close()
print("read", seen)
"""


def test_a_bad_header_name_after_many_good_messages_does_not_crash_the_reader(
    topics_factory: Callable[[int], Topics], tmp_path: Path
) -> None:
    """Through the real client after 300 good messages, when the interpreter has specialised the
    call site of ``msg.headers()`` and no longer checks its result (see
    ``consumer/kafka/headers.py``; ``test_kafka_headers.py`` has the broken list itself). A child
    process, so that a crash fails the test instead of killing the run."""
    topics = topics_factory(1)
    good = [(None, b"{}", [("ce_type", b"x"), ("ce_id", str(i).encode())]) for i in range(300)]
    produce(topics.bootstrap, topics.input, good)
    produce_bad_header(topics.bootstrap, topics.input)
    produce(topics.bootstrap, topics.input, good[:1])
    script = tmp_path / "read_all.py"
    script.write_text(_READ_ALL)
    run = subprocess.run(
        [sys.executable, str(script), topics.bootstrap, topics.input, "302"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert run.returncode == 0, f"reader died ({run.returncode}): {run.stderr[-2000:]}"
    lines = run.stdout.splitlines()
    assert lines[-1] == "read 302"
    [poison] = [line for line in lines if line.startswith("poison")]
    assert poison.startswith("poison 300 headers not decodable")


def test_an_oversized_dead_letter_is_truncated_to_fit_and_the_stream_goes_on(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
) -> None:
    """A 900 KB poison message (300 KB value, 600 KB of headers): copied whole into a dead
    letter (base64) it is 1.2 MB, over the producer's message.max.bytes."""
    topics = topics_factory(1)
    rng = random.Random(0)
    value = b"{" + rng.randbytes(300_000)
    headers = [(f"h{i}", rng.randbytes(300_000)) for i in range(2)]
    produce(topics.bootstrap, topics.input, [(b"big", value, headers)])
    produce(topics.bootstrap, topics.input, _events(["after-0", "after-1"]))

    service = run_service(topics.settings(checkpoint), detector=detector)
    verdicts = TopicReader(topics.bootstrap, topics.verdicts)
    dlq = TopicReader(topics.bootstrap, topics.dlq)
    verdicts.read_until(2, timeout=60)
    dlq.read_until(1, timeout=30)
    assert wait_committed(topics) == end_offsets(topics.bootstrap, topics.input, 1)
    assert sorted(v.event_id for v in verdicts.verdicts()) == ["after-0", "after-1"]
    [dead] = dlq.dead_letters()
    assert dead.code == ErrorCode.INVALID_JSON
    original = dead.original
    assert original.value_sha256 == sha(value) and original.value_size_bytes == len(value)
    assert original.value_truncated or original.headers_omitted
    assert original.value is None or value.startswith(original.value)
    assert service.health.ready()
    verdicts.close()
    dlq.close()
