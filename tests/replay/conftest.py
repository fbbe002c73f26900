"""Fixtures of the issue-6 tests (replay, exactly-once, verdict cache): a checkpoint, a warm
detector, and a recorded window.

``recorded`` runs the live service once over 15 events (4 before the window, 8 inside it,
3 after it, by Kafka timestamp) and waits for their 15 verdicts; the replay tests then audit
the window against that record.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kafka_support import committed, create_topics, unique
from replay_support import (
    T0,
    Recorded,
    make_checkpoint,
    produce_events,
    read_verdicts,
    service_settings,
)

from consumer import Service
from consumer.logs import configure_logging
from detector import Detector

_STRUCTURED: list[tuple[str, str | bytes | None]] = [
    ("content-type", b"application/cloudevents+json")
]


@pytest.fixture(scope="session", autouse=True)
def _logs() -> None:
    configure_logging("warning", "console")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "glff-mnv2.safetensors")


@pytest.fixture(scope="session")
def detector(checkpoint: Path) -> Detector:
    return Detector.from_checkpoint(checkpoint, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def recorded(kafka_bootstrap: str, checkpoint: Path, detector: Detector) -> Recorded:
    """15 events through the live service (real broker), their verdicts, the live offsets."""
    topic, verdicts, group = unique("rp-images"), unique("rp-verdicts"), unique("rp-live")
    create_topics(kafka_bootstrap, {topic: 2, verdicts: 1, f"{verdicts}.dlq": 1})
    produce_events(kafka_bootstrap, topic, [1, 2, 3, 4], T0, "before")
    window = produce_events(
        kafka_bootstrap, topic, [10, 11, 12, 13, 14, 15, 10, 16], T0 + 10_000, "in"
    )
    produce_events(kafka_bootstrap, topic, [20, 21, 22], T0 + 100_000, "after")
    bad = Producer({"bootstrap.servers": kafka_bootstrap})  # one poison message in the window
    bad.produce(topic, value=b"{oops", partition=0, timestamp=T0 + 20_000, headers=_STRUCTURED)
    assert bad.flush(10) == 0
    service = Service(
        service_settings(kafka_bootstrap, checkpoint, topic, verdicts, group), detector=detector
    )
    thread = service.start()
    try:
        assert service.wait_ready(60), service.error
        got = read_verdicts(kafka_bootstrap, verdicts, 15, timeout_s=90)
    finally:
        service.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert len({v.event_id for v in got}) == 15
    offsets = committed(kafka_bootstrap, group, topic, 2)
    assert sum(offsets.values()) == 16  # the live group is at the end (15 + 1 dead letter)
    return Recorded(kafka_bootstrap, topic, verdicts, group, checkpoint, window, got, offsets)


@pytest.fixture
def stop_after() -> type[_StopAfter]:
    return _StopAfter


class _StopAfter:
    """An Event that sets itself after ``n`` calls of :meth:`tick` (interrupts a replay)."""

    def __init__(self, n: int) -> None:
        self.event = threading.Event()
        self.n = n

    def tick(self) -> None:
        self.n -= 1
        if self.n <= 0:
            self.event.set()
