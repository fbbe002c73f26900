"""Duplicate images against the real broker: cache hits and the compacted latest-verdict topic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource
from kafka_support import create_topics, image_bytes, sha, unique
from replay_support import IMAGE_SIZE, produce_events, read_verdicts, service_settings

from consumer import Service
from detector import Detector

pytestmark = pytest.mark.kafka


def test_repeated_images_hit_the_cache_and_land_in_the_latest_verdict_topic(
    kafka_bootstrap: str, checkpoint: Path, detector: Detector
) -> None:
    topic, verdicts, latest = unique("dup-images"), unique("dup-verdicts"), unique("dup-latest")
    create_topics(kafka_bootstrap, {topic: 1, verdicts: 1, f"{verdicts}.dlq": 1})
    seeds = [1, 2, 1, 1, 2, 3, 1]  # 3 distinct images, 4 repeats
    produce_events(kafka_bootstrap, topic, seeds, int(time.time() * 1000), "dup")
    settings = service_settings(
        kafka_bootstrap,
        checkpoint,
        topic,
        verdicts,
        unique("dup-live"),
        kafka={"latest_verdict_topic": latest},
    )
    service = Service(settings, detector=detector)
    thread = service.start()
    try:
        assert service.wait_ready(60), service.error
        got = read_verdicts(kafka_bootstrap, verdicts, len(seeds), timeout_s=60)
    finally:
        service.stop()
        thread.join(30)

    assert len(got) == len(seeds)
    assert sum(v.cached for v in got) == 4
    by_image: dict[str, set[float]] = {}
    for v in got:
        by_image.setdefault(v.image.sha256, set()).add(v.score)
    assert all(len(scores) == 1 for scores in by_image.values())  # a hit = the same verdict
    registry = service.metrics.registry
    assert registry.get_sample_value("synthscan_verdict_cache_hits_total") == 4
    assert registry.get_sample_value("synthscan_verdict_cache_misses_total") == 3

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, latest)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"
    keys = _keys(kafka_bootstrap, latest, len(seeds))
    assert len(keys) == len(seeds)
    assert set(keys) == {sha(image_bytes(s, size=IMAGE_SIZE)).encode() for s in set(seeds)}


def _keys(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("latest-reader"),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    keys: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(keys) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                keys.append(msg.key() or b"")
    finally:
        consumer.close()
    return keys
