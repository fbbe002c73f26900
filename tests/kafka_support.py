"""Kafka and image helpers shared by the consumer, replay and exactly-once tests."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from PIL import Image


def unique(prefix: str) -> str:
    """``prefix`` plus a random suffix: topic and group names no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_bytes(seed: int, size: tuple[int, int] = (96, 80), fmt: str = "PNG") -> bytes:
    """A small random RGB image encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def create_topics(bootstrap: str, partitions: dict[str, int], replication_factor: int = 1) -> None:
    """Create ``{topic: partitions}`` and wait until metadata shows every partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(t, num_partitions=n, replication_factor=replication_factor)
        for t, n in partitions.items()
    ]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=5)
        if all(
            t in meta.topics and len(meta.topics[t].partitions) == n for t, n in partitions.items()
        ):
            return
        time.sleep(0.1)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets of ``topic`` (-1001 = none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps}


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The high watermark of every partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe")})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


ROOT = Path(__file__).resolve().parents[1]


def start_exactly_once_service(
    bootstrap: str, checkpoint: Path, topics: dict[str, str], instance: str
) -> subprocess.Popen[bytes]:
    """A ``python -m consumer run`` subprocess in exactly-once mode with long transactions."""
    sets = {
        "kafka.bootstrap_servers": bootstrap,
        "kafka.group_id": topics["group"],
        "kafka.input_topics": topics["input"],
        "kafka.verdict_topic": topics["verdicts"],
        "kafka.dead_letter_topic": topics["dlq"],
        "kafka.exactly_once": "true",
        "kafka.instance_id": instance,
        "kafka.commit_interval_s": "3.0",  # long transactions: the kill lands inside one
        "kafka.statistics_interval_ms": "0",
        "kafka.session_timeout_ms": "6000",
        "model.checkpoint": str(checkpoint),
        "model.device": "cpu",
        "model.precision": "fp32",
        "model.warmup": "false",
        "model.torch_threads": "1",
        "model.max_batch_size": "2",
        "batching.max_wait_ms": "5",
        "http.enabled": "false",
        "logging.level": "warning",
    }
    argv = [sys.executable, "-m", "consumer", "run"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
