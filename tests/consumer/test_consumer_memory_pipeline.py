"""What only the in-memory broker (consumer.kafka.memory) can stage cheaply: a verdict topic
that refuses this client (an ACL) and is allowed again mid-run. The behaviours both backends
share (verdicts, dead letters, commits, refusals, backpressure, reload) run on both in
``test_consumer_behaviour.py``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from consumer_support import encode, image_event
from kafka_support import image_bytes

from consumer import Service, ServiceSettings
from consumer.kafka import BrokerCode
from consumer.kafka.memory import MemoryBackend, MemoryBroker
from detector import Detector
from schemas import decode_verdict

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


def _all_committed(broker: MemoryBroker) -> bool:
    done = broker.committed("g")
    ends = {tp: broker.end_offset(tp) for tp in broker.partitions_of("images")}
    return all(done.get(tp, 0) == end for tp, end in ends.items())


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
