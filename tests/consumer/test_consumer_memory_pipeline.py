"""The whole service on the in-memory broker (consumer.kafka.memory): parse to verdict and dead
letter, commit order, output refusals. Fast, no cluster; the same service runs against real
Kafka in the *_kafka tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from consumer_support import encode, image_event
from kafka_support import image_bytes

from consumer import Service, ServiceSettings
from consumer.kafka import ErrorCode as BrokerCode
from consumer.kafka.memory import MemoryBackend, MemoryBroker
from detector import Detector
from schemas import ErrorCode, decode_dead_letter, decode_verdict

TOPICS = {"input_topics": ["images"], "verdict_topic": "verdicts", "dead_letter_topic": "dlq"}


def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def broker() -> MemoryBroker:
    broker = MemoryBroker(partitions=2)
    for topic in ("images", "verdicts", "dlq"):
        broker.create_topic(topic)
    return broker


@pytest.fixture
def running(broker: MemoryBroker, detector: Detector) -> Iterator[Callable[..., Service]]:
    started: list[tuple[Service, threading.Thread]] = []

    def start(ready: bool = True, **kafka: Any) -> Service:
        settings = ServiceSettings(
            kafka={**TOPICS, "group_id": "g", "commit_interval_s": 0.05, **kafka},
            http={"enabled": False},
            batching={"max_wait_ms": 5},
        )
        service = Service(settings, detector=detector, backend=MemoryBackend(broker))
        started.append((service, service.start()))
        if ready:  # (a partition that stops at once makes it unready before it is seen ready)
            assert service.wait_ready(30)
        return service

    yield start
    for service, thread in started:
        service.stop()
        thread.join(30)
        assert not thread.is_alive()


def _send(broker: MemoryBroker, n: int) -> list[str]:
    """``n`` valid inline events, then poison: bad JSON, an unsupported image, no image."""
    ids = []
    for i in range(n):
        value, headers = encode(image_event(f"ok{i}", data=image_bytes(i)))
        broker.append("images", value, f"k{i}".encode(), headers)
        ids.append(f"ok{i}")
    value, headers = encode(image_event("tiny", data=image_bytes(99, size=(8, 8))))
    broker.append("images", value, b"tiny", headers)
    broker.append("images", b"{not json", b"bad", [("content-type", b"application/json")])
    value, headers = encode(image_event("empty", data=b""))
    broker.append("images", value, b"empty", headers)
    return ids


def _all_committed(broker: MemoryBroker) -> bool:
    done = broker.committed("g")
    ends = {tp: broker.end_offset(tp) for tp in broker.partitions_of("images")}
    return all(done.get(tp, 0) == end for tp, end in ends.items())


def test_verdicts_dead_letters_and_commits_without_a_broker(
    broker: MemoryBroker, running: Callable[..., Service]
) -> None:
    ids = _send(broker, 6)
    running()
    _until(lambda: len(broker.records("verdicts")) + len(broker.records("dlq")) >= 9)
    _until(lambda: _all_committed(broker))
    verdicts = [decode_verdict(m.value, m.headers) for m in broker.records("verdicts")]
    assert sorted(v.event_id for v in verdicts) == sorted(ids)
    assert all(v.label == ("synthetic" if v.score >= v.threshold else "real") for v in verdicts)
    dead = [decode_dead_letter(m.value, m.headers) for m in broker.records("dlq")]
    codes = {(d.original.key or b"").decode(): d.code for d in dead}
    assert codes == {
        "tiny": ErrorCode.UNSUPPORTED_MEDIA,
        "bad": ErrorCode.INVALID_JSON,
        "empty": ErrorCode.MISSING_IMAGE,
    }


def test_refused_verdicts_become_output_rejected_dead_letters(
    broker: MemoryBroker, running: Callable[..., Service]
) -> None:
    broker.refuse("verdicts")
    _send(broker, 3)
    running()
    _until(lambda: len(broker.records("dlq")) >= 6)
    _until(lambda: _all_committed(broker))
    dead = [decode_dead_letter(m.value, m.headers) for m in broker.records("dlq")]
    rejected = [d for d in dead if d.code == ErrorCode.OUTPUT_REJECTED]
    assert len(rejected) == 3 and all("verdict not delivered" in d.message for d in rejected)


def test_unauthorized_verdict_topic_holds_output_unready_until_allowed(
    broker: MemoryBroker, running: Callable[..., Service]
) -> None:
    """Issue 19: a destination error is not the record's fault: no dead letter, nothing
    committed, not ready; output resumes by itself when the topic can be written again."""
    broker.refuse("verdicts", code=BrokerCode.TOPIC_AUTHORIZATION_FAILED)
    ids = [f"ok{i}" for i in range(4)]
    for i, eid in enumerate(ids):
        value, headers = encode(image_event(eid, data=image_bytes(i)))
        broker.append("images", value, eid.encode(), headers)
    service = running(ready=False)
    _until(lambda: service.health.model_ready and service.health.assigned > 0)
    _until(lambda: not service.health.output_ok)
    time.sleep(1.5)  # past a back-off: retried, still held
    assert not service.health.ready()
    assert broker.records("dlq") == [] and broker.records("verdicts") == []
    assert all(offset == 0 for offset in broker.committed("g").values())
    broker.allow("verdicts")
    _until(lambda: _all_committed(broker))
    verdicts = [decode_verdict(m.value, m.headers) for m in broker.records("verdicts")]
    assert sorted(v.event_id for v in verdicts) == ids
    assert broker.records("dlq") == []
    _until(service.health.ready)


def test_undeliverable_record_stops_its_partition_and_is_never_committed(
    broker: MemoryBroker, running: Callable[..., Service]
) -> None:
    broker.refuse("verdicts")
    broker.refuse("dlq")
    value, headers = encode(image_event("lost", data=image_bytes(1)))
    broker.append("images", value, headers=headers, partition=0)
    value, headers = encode(image_event("fine", data=image_bytes(2)))
    broker.append("images", b"{not json", headers=[], partition=1)
    service = running(ready=False)
    _until(lambda: service.health.stuck_partitions == 2)
    assert broker.committed("g").get(("images", 0), 0) == 0
    assert not service.health.ready()
