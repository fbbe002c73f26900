"""Helpers of the replay and exactly-once tests: checkpoints, images, topics, readers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from confluent_kafka import Consumer, Producer
from kafka_support import image_bytes, sha, unique

from consumer import ServiceSettings
from detector.checkpoint import CheckpointMetadata, load_checkpoint, save_checkpoint
from detector.model import ModelConfig, build_model
from schemas import ImageData, ImageEvent, Verdict, decode_verdict, encode_image_event


@dataclass(frozen=True)
class Sent:
    event_id: str
    sha256: str
    timestamp_ms: int


T0 = int(time.time() * 1000) - 600_000  # event timestamps: before / in / after the window
# (recent: the broker's time-based retention would delete years-old timestamps)
WINDOW = (T0 + 5_000, T0 + 50_000)
IMAGE_SIZE = (64, 48)  # smaller than the consumer tests' default: the replay runs many images


@dataclass
class Recorded:
    """The live service's record of 15 events (see the ``recorded`` fixture)."""

    bootstrap: str
    input_topic: str
    verdict_topic: str
    group: str
    checkpoint: Path
    window_events: list[Sent]
    verdicts: list[Verdict]
    committed: dict[int, int]

    def in_window(self) -> list[Verdict]:
        ids = {s.event_id for s in self.window_events}
        return [v for v in self.verdicts if v.event_id in ids]


def make_checkpoint(path: Path, backbone: str = "mobilenet_v2", seed: int = 0) -> Path:
    """A random-init ``global_only`` checkpoint: one 224 crop per image, so ~7x
    cheaper on CPU than GLFF; the replay/exactly-once logic does not depend on the arch."""
    torch.manual_seed(seed)
    config = ModelConfig(arch="global_only", backbone=backbone, patch_strategy="none")
    model = build_model(config, backbone_weights=None)
    with torch.no_grad():  # random-init features are ~1e-9: amplify so scores differ by image
        model.head.weight.mul_(1e9)
    meta = CheckpointMetadata(config=config, name="test-cnn", version="1.0.0")
    save_checkpoint(path, model, meta)
    return path


def negated_checkpoint(source: Path, path: Path) -> Path:
    """A "candidate" model whose logits are the negation of ``source``'s: score -> 1 - score."""
    model, meta = load_checkpoint(source)
    with torch.no_grad():
        model.head.weight.neg_()
        model.head.bias.neg_()
    save_checkpoint(
        path,
        model,
        CheckpointMetadata(config=meta.config, name=meta.name, version="2.0.0-candidate"),
    )
    return path


def produce_events(
    bootstrap: str, topic: str, seeds: list[int], timestamp_ms: int, prefix: str
) -> list[Sent]:
    """Inline binary-mode image events with the given Kafka timestamp; waits for delivery."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sent: list[Sent] = []
    for i, seed in enumerate(seeds):
        data = image_bytes(seed, size=IMAGE_SIZE)
        event = ImageEvent(
            id=f"{prefix}-{i}",
            source="/tests/replay",
            data=ImageData(content_id=f"c-{prefix}-{i}", data=data, mime="image/png"),
        )
        value, headers = encode_image_event(event, mode="binary", inline="raw")
        producer.produce(
            topic, value=value, key=event.id.encode(), headers=list(headers), timestamp=timestamp_ms
        )
        sent.append(Sent(event.id, sha(data), timestamp_ms))
    assert producer.flush(30) == 0
    return sent


def read_verdicts(
    bootstrap: str, topic: str, count: int, timeout_s: float, *, committed_only: bool = True
) -> list[Verdict]:
    """Read ``topic`` from the start until ``count`` verdicts (or the timeout), then settle."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    consumer.subscribe([topic])
    out: list[Verdict] = []
    deadline = time.monotonic() + timeout_s
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(decode_verdict(msg.value(), msg.headers()))
                quiet_until = None
            if len(out) >= count:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
    finally:
        consumer.close()
    return out


def service_settings(
    bootstrap: str, checkpoint: Path, input_topic: str, verdicts: str, group: str, **extra: object
) -> ServiceSettings:
    kafka = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "input_topics": [input_topic],
        "verdict_topic": verdicts,
        "dead_letter_topic": f"{verdicts}.dlq",
        "commit_interval_s": 0.2,
        "statistics_interval_ms": 0,
        **dict(extra.pop("kafka", {})),  # type: ignore[call-overload]
    }
    model = {
        "checkpoint": checkpoint,
        "device": "cpu",
        "precision": "fp32",
        "warmup": False,
        "max_batch_size": 4,
        **dict(extra.pop("model", {})),  # type: ignore[call-overload]
    }
    return ServiceSettings(
        kafka=kafka,  # type: ignore[arg-type]
        model=model,  # type: ignore[arg-type]
        batching=extra.pop("batching", {"max_wait_ms": 20, "fetch_workers": 2}),  # type: ignore[arg-type]
        http={"enabled": False},  # type: ignore[arg-type]
        shutdown={"grace_s": 10},  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
