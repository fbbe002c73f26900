"""Steps in isolation: detect (bad image isolated), fetch/decode error codes, produce -> receipts
(on librdkafka's mock cluster), batch sizes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from consumer_support import Collect, encode, image_event
from kafka_support import image_bytes

from consumer.errors import FetchFailedError
from consumer.items import Delivered, Envelope, Failure, Outcome, OutRecord, WorkItem
from consumer.kafka.clients import ProducerHandle
from consumer.kafka.kafka_clients import KafkaProducer
from consumer.pipeline.backpressure import PixelBudget
from consumer.pipeline.steps.batch import BatchStep
from consumer.pipeline.steps.detect import DetectStep
from consumer.pipeline.steps.fetch_decode import FetchDecodeStep
from consumer.pipeline.steps.produce import ProduceStep
from consumer.serving.metrics import Metrics
from detector import DECODE_BYTES_PER_PIXEL, DecodedImage, ImageLimits, PatchEvidence, Prediction
from schemas import ErrorCode, parse_image_event


def work_item(offset: int, data: bytes | None = None, epoch: int = 1) -> WorkItem:
    value, headers = encode(image_event(f"e{offset}", data=data or image_bytes(offset)))
    env = Envelope("t", 0, offset, b"k", value, tuple(headers), 1_000, epoch)
    return WorkItem(envelope=env, event=parse_image_event(value, headers))


class FakeDetector:
    """Fails every batch that holds an image 77 px wide; counts calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, images: Any) -> list[Prediction]:
        self.calls.append(len(images))
        if any(img.width == 77 for img in images):
            raise RuntimeError("boom")
        return [
            Prediction(
                score=0.9,
                is_synthetic=True,
                threshold=0.5,
                patches=[PatchEvidence(1, (0, 0, 32, 32), 3, 0.1, 0.5)],
                global_attention=0.5,
                width=img.width,
                height=img.height,
            )
            for img in images
        ]


def decoded(width: int) -> DecodedImage:
    from detector import decode_image

    return decode_image(image_bytes(width, size=(width, 40)))


class GatedDetector(FakeDetector):
    """Holds its first batch until released, so that later batches queue up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def predict(self, images: Any) -> list[Prediction]:
        self.release.wait(10)
        return super().predict(images)


def test_detect_runs_batches_that_queued_while_busy_together_up_to_max_batch() -> None:
    sink, det = Collect(), GatedDetector()
    step = DetectStep(det, sink, Metrics(), max_batch=4)
    offsets = iter(range(100))
    for size in (2, 2, 1, 1, 3):  # the first runs at once; the others wait behind it
        batch = [work_item(next(offsets)) for _ in range(size)]
        for item in batch:
            item.image = decoded(64)
        step.submit(batch)
    det.release.set()
    step.join(20)
    assert det.calls == [2, 4, 3]  # 2 | 2+1+1 | 3 (2+1+1+3 would exceed 4)
    verdicts = [o for o in sink.items if isinstance(o, WorkItem)]
    assert [v.envelope.offset for v in verdicts] == list(range(9))  # order kept
    assert [v.timings.batch_size for v in verdicts] == [2, 2, 4, 4, 4, 4, 3, 3, 3]
    step.close()


def test_detect_isolates_the_image_that_breaks_its_batch() -> None:
    sink, det = Collect(), FakeDetector()
    step = DetectStep(det, sink, Metrics(), 1, is_live=lambda env: env.offset != 3)
    batch = [work_item(i) for i in range(4)]
    for item, width in zip(batch, (64, 77, 80, 64), strict=True):
        item.image = decoded(width)
    step.submit(batch)
    step.join(10)
    assert sink.joined
    verdicts = [o for o in sink.items if isinstance(o, WorkItem)]
    failures = [o for o in sink.items if isinstance(o, Failure)]
    assert [v.envelope.offset for v in verdicts] == [0, 2]  # 3 was revoked: dropped
    assert all(v.prediction is not None and v.timings.batch_size == 3 for v in verdicts)
    assert [(f.envelope.offset, f.code) for f in failures] == [(1, ErrorCode.INFERENCE_FAILED)]
    assert det.calls == [3, 1, 1, 1]  # the batch, then image by image
    step.close()


def test_batch_step_forwards_by_size_and_on_join() -> None:
    sink = Collect()
    step = BatchStep(sink, max_size=2, max_wait_s=60)
    for i in range(5):
        step.submit(work_item(i))
    step.poll()
    assert [len(b) for b in sink.items] == [2, 2]
    step.join(1)
    assert [len(b) for b in sink.items] == [2, 2, 1]


class FailingFetcher:
    def fetch(self, url: str, expected_sha256: str | None, expected_size: int | None) -> bytes:
        error = FetchFailedError("503 from origin", retryable=True)
        error.attempts = 3
        raise error


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, ErrorCode.IMAGE_DECODE_ERROR),
        (image_bytes(1, size=(20, 20)), ErrorCode.UNSUPPORTED_MEDIA),  # below min_side
        (image_bytes(1, size=(300, 40)), ErrorCode.IMAGE_TOO_LARGE),
        (None, ErrorCode.FETCH_FAILED),
    ],
)
def test_fetch_decode_maps_errors_to_codes(data: bytes | None, code: ErrorCode) -> None:
    sink, dead = Collect(), Collect()
    step = FetchDecodeStep(
        sink, dead, FailingFetcher(), ImageLimits(max_side=200), Metrics(), workers=2
    )
    if data is None:
        value, headers = encode(image_event("u", url="https://img.example.com/a.png"))
        env = Envelope("t", 0, 0, None, value, tuple(headers), None, 1)
        item = WorkItem(envelope=env, event=parse_image_event(value, headers))
    else:
        item = work_item(0, data)
    step.submit(item)
    step.join(10)
    step.close()
    assert sink.items == []
    (failure,) = dead.items
    assert failure.code == code and failure.event is not None
    assert failure.attempts == (3 if code == ErrorCode.FETCH_FAILED else 1)


class FreePixels(Collect):
    """Takes decoded items like the detector does: drops their pixels (and pixel budget)."""

    def submit(self, item: Any) -> None:
        item.image = None
        super().submit(item)


def test_fetch_decode_join_forwards_while_workers_wait_for_pixel_room() -> None:
    """At shutdown, a worker waiting for pixel room must not wait for the whole drain budget:
    join forwards the decoded items ahead of it so that their pixels are freed."""
    data = image_bytes(3, size=(200, 200))
    budget = PixelBudget(200 * 200 * DECODE_BYTES_PER_PIXEL)  # one decode at a time
    sink = FreePixels()
    step = FetchDecodeStep(
        sink, Collect(), None, ImageLimits(), Metrics(), workers=2, pixels=budget
    )
    for i in range(2):
        step.submit(work_item(i, data))
    began = time.monotonic()
    step.join(20)
    took = time.monotonic() - began
    step.close()
    assert len(sink.items) == 2, took
    assert took < 10, took
    assert budget.peak <= budget.capacity


class Builder:
    def __init__(self) -> None:
        self.fail_verdicts = False

    def verdict(self, item: WorkItem) -> OutRecord:
        if self.fail_verdicts:
            raise ValueError("bug")
        return OutRecord("verdicts", b"k", b"v")

    def dead_letter(self, failure: Failure) -> OutRecord:
        return OutRecord("dlq", None, failure.code.value.encode())

    def latest(self, item: WorkItem, verdict: OutRecord) -> OutRecord | None:
        return None


def test_produce_confirms_each_outcome_once_and_dead_letters_build_bugs() -> None:
    producer = KafkaProducer({"test.mock.num.brokers": 1, "enable.idempotence": True})
    receipts, builder, metrics = Collect(), Builder(), Metrics()
    step = ProduceStep(
        ProducerHandle.of(producer), builder, receipts, metrics, is_live=lambda e: e.epoch == 1
    )
    outcomes: list[Outcome] = [
        work_item(0),
        Failure(work_item(1).envelope, ErrorCode.MISSING_IMAGE, "x"),
    ]
    stale = work_item(2, epoch=0)
    for outcome in outcomes:
        step.submit(outcome)
    step.submit(stale)  # its partition was revoked: never produced, never confirmed
    builder.fail_verdicts = True
    item = work_item(3)
    item.prediction = FakeDetector().predict([decoded(64)])[0]
    step.submit(item)
    step.join(10)
    assert step.pending == 0
    assert sorted(r.envelope.offset for r in receipts.items) == [0, 1, 3]
    assert all(isinstance(r, Delivered) for r in receipts.items)
    assert metrics.dead_letters.labels(code="internal_error")._value.get() == 1
    assert metrics.dead_letters.labels(code="missing_image")._value.get() == 1
