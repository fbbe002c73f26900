"""End to end against the real broker, service in-process: verdicts, dead letters, groups."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from consumer_support import (
    ImageServer,
    TopicReader,
    Topics,
    encode,
    http_get,
    image_event,
    produce,
    wait_committed,
)
from kafka_support import end_offsets, image_bytes, sha

from consumer import Service
from detector import Detector
from schemas import ErrorCode

pytestmark = pytest.mark.kafka


def test_n_events_in_both_modes_give_n_verdicts_with_evidence(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
    image_server: ImageServer,
) -> None:
    topics = topics_factory(2)
    sent: dict[str, dict[str, Any]] = {}
    messages = []
    for i in range(12):
        img = image_bytes(i, size=(64 + 8 * i, 72))
        eid = f"ev-{i}"
        mode = "binary" if i % 2 == 0 else "structured"
        kind = ["raw", "base64", "url"][i % 3]
        if kind == "url":
            event = image_event(
                eid, url=image_server.url(f"/img/{i}-{64 + 8 * i}x72.png"), sha256=sha(img)
            )
        else:
            event = image_event(eid, data=img, sha256=sha(img), size=len(img))
        value, headers = encode(event, mode=mode, inline="raw" if kind == "raw" else "base64")
        messages.append((eid.encode(), value, headers))
        sent[eid] = {"sha": sha(img), "w": 64 + 8 * i, "h": 72, "mode": mode, "kind": kind}
    produce(topics.bootstrap, topics.input, messages)

    service = run_service(topics.settings(checkpoint), detector=detector)
    reader = TopicReader(topics.bootstrap, topics.verdicts)
    reader.read_until(len(sent), timeout=60)
    assert wait_committed(topics) == end_offsets(topics.bootstrap, topics.input, 2)
    reader.settle(0.5)
    verdicts = reader.verdicts()
    assert sorted(v.event_id for v in verdicts) == sorted(sent)  # exactly N, none twice
    for v in verdicts:
        want = sent[v.event_id]
        assert v.image.sha256 == want["sha"]
        assert (v.image.width, v.image.height) == (want["w"], want["h"])
        assert len(v.patches) == 6 and [p.rank for p in v.patches] == list(range(1, 7))
        assert all(p.box.x1 <= v.image.width and p.box.y1 <= v.image.height for p in v.patches)
        assert v.label == ("synthetic" if v.score >= v.threshold else "real")
        assert v.model.weights_sha256 == detector.info.weights_sha256
        assert v.source.topic == topics.input and v.content_id == f"c-{v.event_id}"
        assert v.metadata == {"n": v.event_id}
        assert (v.timings.fetch_ms > 0) == (want["kind"] == "url")
    assert sum(image_server.hits.values()) == 4
    reader.close()

    status, body = http_get(service.http_port, "/metrics")
    assert status == 200
    assert "synthscan_verdicts_total" in body and "synthscan_model_info{" in body
    assert "synthscan_batch_size_bucket" in body
    assert http_get(service.http_port, "/healthz")[0] == 200
    status, body = http_get(service.http_port, "/readyz")
    assert status == 200 and json.loads(body)["assigned_partitions"] == 2


class FlakyDetector:
    """Raises for a batch with a 77 px wide image; a NaN score (a bug) for a 78 px wide one."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.info = inner.info

    def predict(self, images: Any) -> Any:
        if any(img.width == 77 for img in images):
            raise RuntimeError("simulated CUDA error")
        predictions = self.inner.predict(images)
        return [
            dataclasses.replace(p, score=float("nan")) if img.width == 78 else p
            for img, p in zip(images, predictions, strict=True)
        ]


def test_bad_inputs_become_dead_letters_and_the_stream_goes_on(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
    image_server: ImageServer,
) -> None:
    topics = topics_factory(1)
    good = image_bytes(1)
    ce = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"bin-1"),
        ("ce_source", b"/t"),
        ("ce_type", b"io.synthscan.image.v1"),
    ]
    structured = [("content-type", b"application/cloudevents+json")]
    png = [*ce, ("content-type", b"image/png")]
    bad: list[tuple[ErrorCode, bytes | None, list]] = [
        (ErrorCode.INVALID_JSON, b"{nope", structured),
        (
            ErrorCode.SCHEMA_VIOLATION,
            json.dumps({"specversion": "1.0", "data": {}}).encode(),
            structured,
        ),
        (ErrorCode.UNSUPPORTED_MEDIA, b"hello", [*ce, ("content-type", b"text/plain")]),
        (ErrorCode.MISSING_IMAGE, b"", png),
        (ErrorCode.IMAGE_DECODE_ERROR, b"\x89PNG garbage", png),
        (
            ErrorCode.IMAGE_TOO_LARGE,
            image_bytes(2, size=(400, 40)),
            png,
        ),
        (ErrorCode.CHECKSUM_MISMATCH, *encode(image_event("sum", data=good, sha256="0" * 64))),
        (
            ErrorCode.INFERENCE_FAILED,
            image_bytes(3, size=(77, 64)),
            png,
        ),
        (ErrorCode.INTERNAL_ERROR, image_bytes(4, size=(78, 64)), png),
        (ErrorCode.FETCH_FAILED, *encode(image_event("404", url=image_server.url("/nope")))),
        (
            ErrorCode.FETCH_FORBIDDEN,
            *encode(image_event("meta", url="http://169.254.169.254/latest/meta-data")),
        ),
        (ErrorCode.FETCH_TIMEOUT, *encode(image_event("slow", url=image_server.url("/slow")))),
        (ErrorCode.FETCH_TOO_LARGE, *encode(image_event("big", url=image_server.url("/big")))),
        (
            ErrorCode.CHECKSUM_MISMATCH,
            *encode(image_event("urlsum", url=image_server.url("/img/5.png"), sha256="1" * 64)),
        ),
        (ErrorCode.FETCH_FORBIDDEN, *encode(image_event("ref", ref="uploads/a.png"))),
    ]
    # output_rejected comes from the output side, not the input (tests/chaos: undeliverable output)
    assert {code for code, _v, _h in bad} == set(ErrorCode) - {ErrorCode.OUTPUT_REJECTED}
    messages = []
    for i, (_code, value, headers) in enumerate(bad):
        img = image_bytes(100 + i)
        messages.append((f"good-{i}".encode(), *encode(image_event(f"good-{i}", data=img))))
        messages.append((f"bad-{i}".encode(), value, headers))
    produce(topics.bootstrap, topics.input, messages)

    settings = topics.settings(checkpoint, model={"limits": {"max_side": 300}})
    run_service(settings, detector=FlakyDetector(detector))
    dlq = TopicReader(topics.bootstrap, topics.dlq)
    verdicts = TopicReader(topics.bootstrap, topics.verdicts)
    dlq.read_until(len(bad), timeout=60)
    verdicts.read_until(len(bad), timeout=60)
    assert wait_committed(topics) == {0: 2 * len(bad)}
    dlq.settle(0.5)
    letters = dlq.dead_letters()
    assert Counter(d.code for d in letters) == Counter(code for code, _v, _h in bad)
    for letter in letters:
        assert letter.source.topic == topics.input and letter.source.offset % 2 == 1
        assert letter.original.key == f"bad-{letter.source.offset // 2}".encode()
        assert letter.consumer_group == topics.group and letter.message
    assert sorted(v.event_id for v in verdicts.verdicts()) == sorted(
        f"good-{i}" for i in range(len(bad))
    )
    dlq.close()
    verdicts.close()


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_two_consumers_split_the_partitions_and_lose_nothing(
    exactly_once: bool,
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
) -> None:
    topics = topics_factory(4)
    n = 16

    def events(start: int, count: int) -> list[tuple[bytes, bytes, list]]:
        return [
            (f"k{i}".encode(), *encode(image_event(f"e{i}", data=image_bytes(i))))
            for i in range(start, start + count)
        ]

    def settings(name: str) -> Any:
        kafka = {"exactly_once": exactly_once, "instance_id": f"{topics.group}-{name}"}
        return topics.settings(checkpoint, kafka=kafka)

    first = run_service(settings("a"), detector=detector)
    produce(topics.bootstrap, topics.input, events(0, n // 2))
    time.sleep(1.0)  # the first consumer is mid-work when the second joins
    second = run_service(settings("b"), detector=detector)
    produce(topics.bootstrap, topics.input, events(n // 2, n // 2))
    reader = TopicReader(topics.bootstrap, topics.verdicts)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len({v.event_id for v in reader.verdicts()}) < n:
        reader.read_until(len(reader.records) + 1, timeout=1)
    assert wait_committed(topics) == end_offsets(topics.bootstrap, topics.input, 4)
    ids = Counter(v.event_id for v in reader.verdicts())
    assert set(ids) == {f"e{i}" for i in range(n)}
    print(f"duplicates after the rebalance: {sum(ids.values()) - n}")
    if exactly_once:  # the reader is read_committed
        assert sum(ids.values()) == n
    assert first.health.assigned == 2 and second.health.assigned == 2
    for service in (first, second):
        assert service.metrics.events_in.labels(topic=topics.input)._value.get() > 0
        assert service.metrics.rebalances.labels(kind="assign")._value.get() >= 1
    reader.close()


class SlowDetector:
    """A batch that takes longer than ``max.poll.interval.ms`` (a long GPU batch)."""

    def __init__(self, inner: Detector, seconds: float) -> None:
        self.inner, self.info, self.seconds = inner, inner.info, seconds

    def predict(self, images: Any) -> Any:
        time.sleep(self.seconds)
        return self.inner.predict(images)


def test_a_batch_longer_than_max_poll_interval_keeps_the_group_and_liveness(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
) -> None:
    topics = topics_factory(1)
    settings = topics.settings(
        checkpoint,
        kafka={"max_poll_interval_ms": 6000},
        http={"heartbeat_timeout_s": 1.0},
        shutdown={"grace_s": 5},
    )
    service = run_service(settings, detector=SlowDetector(detector, seconds=8.0))
    produce(
        topics.bootstrap,
        topics.input,
        [(b"k", *encode(image_event(f"slow-{i}", data=image_bytes(i)))) for i in range(2)],
    )
    reader = TopicReader(topics.bootstrap, topics.verdicts)
    began = time.monotonic()
    live = []
    while time.monotonic() - began < 9.0:  # the whole batch, and past max.poll.interval.ms
        live.append(http_get(service.http_port, "/healthz")[0])
        time.sleep(0.5)
    assert set(live) == {200}
    reader.read_until(2, timeout=30)
    assert sorted(v.event_id for v in reader.verdicts()) == ["slow-0", "slow-1"]
    assert service.metrics.rebalances.labels(kind="revoke")._value.get() == 0
    assert service.metrics.rebalances.labels(kind="lost")._value.get() == 0
    assert service.health.assigned == 1 and service.health.ready()
    reader.close()
