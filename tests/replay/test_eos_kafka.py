"""Exactly-once mode against the real broker: SIGKILL in the middle of a transaction.

A consumer process is killed with SIGKILL while a transaction holds verdicts (a
``read_uncommitted`` reader sees more records than a ``read_committed`` one), then restarted
with the same instance id (same ``transactional.id``: the new producer fences the old one and
the broker aborts its open transaction). A ``read_committed`` reader must then see every
verdict and dead letter exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from kafka_support import create_topics, start_exactly_once_service, unique
from replay_support import produce_events

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
N_IMAGES = 24
N_BAD = 2


class _Reader:
    """Counts records of a topic from the beginning with the given isolation level."""

    def __init__(self, bootstrap: str, topic: str, isolation: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique("eos-reader"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": isolation,
            }
        )
        self.consumer.subscribe([topic])
        self.values: list[bytes] = []

    def drain(self, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(100, 0.05):
                if msg.error() is None:
                    self.values.append(msg.value() or b"")
        return len(self.values)

    def close(self) -> None:
        self.consumer.close()


def test_sigkill_mid_transaction_then_restart_yields_each_verdict_exactly_once(
    kafka_bootstrap: str, checkpoint: Path
) -> None:
    topics = {
        "input": unique("eos-images"),
        "verdicts": unique("eos-verdicts"),
        "dlq": unique("eos-dlq"),
        "group": unique("eos-live"),
    }
    create_topics(kafka_bootstrap, {topics["input"]: 2, topics["verdicts"]: 1, topics["dlq"]: 1})
    stamp, half = int(time.time() * 1000), N_IMAGES // 2
    produce_events(kafka_bootstrap, topics["input"], list(range(half)), stamp, "eos")
    bad = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(N_BAD):
        bad.produce(
            topics["input"],
            value=b"{not json",
            headers=[("content-type", b"application/cloudevents+json")],
        )
    assert bad.flush(10) == 0
    committed = _Reader(kafka_bootstrap, topics["verdicts"], "read_committed")
    uncommitted = _Reader(kafka_bootstrap, topics["verdicts"], "read_uncommitted")
    instance = unique("eos-pod")

    first = start_exactly_once_service(kafka_bootstrap, checkpoint, topics, instance)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and first.poll() is None:
            open_records = uncommitted.drain(0.05) - committed.drain(0.05)
            if open_records > 0 or len(committed.values) >= half:
                break  # verdicts sit in an open transaction, or the first half is committed
        # outputs are released and committed on the commit tick (issue 19), so the open window
        # is short: the second half arrives and the process dies while it holds that work
        rest = list(range(half, N_IMAGES))
        produce_events(kafka_bootstrap, topics["input"], rest, stamp, "eos-late")
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    seen_before_restart = len(committed.values)
    assert seen_before_restart < N_IMAGES, "the first process finished before it was killed"

    second = start_exactly_once_service(kafka_bootstrap, checkpoint, topics, instance)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(committed.values) < N_IMAGES:
            committed.drain(0.5)
            assert second.poll() is None, second.stderr.read().decode() if second.stderr else ""
        committed.drain(3.0)  # anything extra would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
    total_uncommitted = uncommitted.drain(1.0)
    dead = _Reader(kafka_bootstrap, topics["dlq"], "read_committed")
    dead_count = dead.drain(5.0)
    for reader in (committed, uncommitted, dead):
        reader.close()

    assert len(committed.values) == N_IMAGES
    event_ids = [json.loads(v)["event_id"] for v in committed.values]
    assert len(set(event_ids)) == N_IMAGES  # no duplicate reached a read_committed reader
    assert dead_count == N_BAD
    # records of the aborted transaction stay in the log, visible to read_uncommitted only
    print(f"committed before kill {seen_before_restart}, uncommitted total {total_uncommitted}")
    assert total_uncommitted >= N_IMAGES
