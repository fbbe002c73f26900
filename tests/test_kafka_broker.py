"""The real Apache Kafka broker answers: produce, consume, commit, offsets_for_times."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from devkafka.broker import KafkaBroker, free_port
from devkafka.broker import main as broker_main

pytestmark = pytest.mark.kafka


def _create_topic(bootstrap: str, partitions: int = 1) -> str:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)
    return topic


def _consume(consumer: Consumer, count: int, timeout_s: float = 30.0) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None and err.code() != KafkaError._PARTITION_EOF:
            raise AssertionError(err)
        if err is None:
            values.append(msg.value())
    return values


def test_broker_is_real_kafka(kafka_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.brokers) == 1
    # offsets_for_times is a broker feature the librdkafka mock cluster lacks.
    assert metadata.cluster_id


def test_produce_consume_commit_and_offsets_for_times(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    base_ms = int(time.time() * 1000) - 60_000
    for i in range(10):
        producer.produce(topic, value=f"m{i}".encode(), timestamp=base_ms + i * 1000)
    assert producer.flush(30) == 0

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    assert _consume(consumer, 10) == [f"m{i}".encode() for i in range(10)]
    consumer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == 7

    found = consumer.offsets_for_times([TopicPartition(topic, 0, base_ms + 4500)], timeout=10)
    assert found[0].offset == 5
    consumer.close()

    # A new member of the group resumes at the committed offset.
    resumed = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    resumed.subscribe([topic])
    assert _consume(resumed, 3) == [b"m7", b"m8", b"m9"]
    resumed.close()


@pytest.mark.timeout(180)
def test_the_command_line_starts_once_and_removes_its_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``up`` on a running broker says so and starts nothing; ``down`` stops and deletes."""
    run_dir = tmp_path / "kafka"
    argv = ["--dir", str(run_dir), "--port", str(free_port())]
    try:
        assert broker_main(["up", *argv]) == 0
        assert "kafka up at" in capsys.readouterr().out
        assert KafkaBroker(run_dir).is_running()
        assert broker_main(["up", *argv]) == 0
        assert "already running" in capsys.readouterr().out
    finally:
        assert broker_main(["down", *argv]) == 0
    assert not run_dir.exists() and not KafkaBroker(run_dir).is_running()
