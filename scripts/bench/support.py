"""Measurement helpers shared by the Kafka benchmarks: topics, paced producing, a verdict clock."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from PIL import Image

from detector import DecodedImage, Detector, ModelInfo, Prediction
from schemas import ImageData, ImageEvent, decode_verdict, encode_image_event

Message = tuple[bytes, bytes, list]


class StubDetector:
    """Answers at once: isolates the cost of the Kafka side."""

    info = ModelInfo(
        name="stub",
        version="0",
        arch="global_only",
        backbone="none",
        patch_strategy="none",
        weights_sha256="0" * 64,
        threshold=0.5,
        preprocessing_version="stub",
        input_size=224,
        torch_version="-",
        torchvision_version="-",
        device="cpu",
        precision="fp32",
    )

    def predict(self, images: Sequence[DecodedImage]) -> list[Prediction]:
        return [Prediction(0.25, False, 0.5, [], 1.0, im.width, im.height) for im in images]


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def load_detector(model: str) -> Any:
    """``"stub"``: a :class:`StubDetector`; else a warmed-up CPU detector from that checkpoint."""
    if model == "stub":
        return StubDetector()
    detector = Detector.from_checkpoint(model, device="cpu", precision="fp32")
    detector.warmup()
    return detector


def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create ``{topic: partitions}`` (broker-default replication) and wait for the result."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(topic, num_partitions=n) for topic, n in partitions.items()]
    for future in admin.create_topics(new).values():
        future.result(30)


def image_events(images: list[bytes], n: int, mime: str, start: int = 0) -> Iterator[Message]:
    """``n`` inline binary-mode image events ``(key, value, headers)``, cycling over ``images``."""
    for i in range(start, start + n):
        event = ImageEvent(
            id=f"bench-{uuid.uuid4()}",
            source="/bench",
            data=ImageData(data=images[i % len(images)], mime=mime),
        )
        value, headers = encode_image_event(event, mode="binary")
        yield event.id.encode(), value, list(headers)


def produce(bootstrap: str, topic: str, msgs: Iterable[Message], rate: float) -> None:
    """Produce ``msgs`` at ``rate`` per second (0: as fast as possible) and flush."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0 if rate else 5})
    began = time.monotonic()
    for i, (key, value, headers) in enumerate(msgs):
        if rate:
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.produce(topic, value=value, key=key, headers=headers)
        producer.poll(0)
    producer.flush(30)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0.0 when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


class VerdictClock:
    """A read_committed reader of the verdict topic in a thread.

    Records ``(seen, latency, batch_size)`` per verdict: when the reader saw it (so in
    exactly-once mode it includes the transaction commit), that minus the input message
    timestamp, and the detector batch the verdict came from.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-reader-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "isolation.level": "read_committed",
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.05):
                if msg.error() is not None:
                    continue
                seen = time.time()
                verdict = decode_verdict(msg.value(), msg.headers())
                source_s = (verdict.source.timestamp_ms or seen * 1000.0) / 1000.0
                self.samples.append((seen, seen - source_s, verdict.timings.batch_size or 1))

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` verdicts were seen (False on timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.samples) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.samples) >= count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
