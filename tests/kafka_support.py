"""Kafka and image helpers shared by the consumer, replay and exactly-once tests."""

from __future__ import annotations

import hashlib
import io
import time
import uuid

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


def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create ``{topic: partitions}`` and wait until metadata shows every partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in partitions.items()]
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
