"""Detect step: one resident model, run in a worker thread so the poll loop keeps polling."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Protocol

import structlog

from consumer.errors import InferenceFailed
from consumer.items import Envelope, Failure, Outcome, WorkItem
from consumer.pipeline.steps.base import ProcessingStep, remaining
from consumer.serving.metrics import Metrics

if TYPE_CHECKING:
    from detector import DecodedImage, Prediction

__all__ = ["DetectStep", "Predictor"]

log = structlog.get_logger("consumer.detect")

_Result = list["Prediction | Exception"]


class Predictor(Protocol):
    """What the step needs of :class:`detector.Detector`."""

    def predict(self, images: Sequence[DecodedImage]) -> list[Prediction]: ...


class DetectStep(ProcessingStep[list[WorkItem]]):
    """Runs batches one at a time on the detector in a worker thread.

    A batch that raises is retried image by image, so one bad image cannot take its batch
    with it; an image that still fails becomes an ``inference_failed`` dead letter. Items whose
    partition was revoked meanwhile (``is_live`` False) are dropped before inference.

    Batches that queued up while the model was busy (the batch step closes one every
    ``max_wait_ms``) run together, up to ``max_batch`` images (``model.max_batch_size``, one
    forward pass): under load the model gets full batches instead of a backlog of small ones.
    Order is kept.
    """

    def __init__(
        self,
        detector: Predictor,
        next_step: ProcessingStep[Outcome],
        metrics: Metrics,
        max_batch: int,
        is_live: Callable[[Envelope], bool] = lambda _: True,
    ) -> None:
        self.next_step = next_step
        self._max_batch = max_batch
        self._detector = detector
        self._metrics = metrics
        self._is_live = is_live
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect")
        self._queue: deque[list[WorkItem]] = deque()
        self._running: tuple[list[WorkItem], Future[tuple[_Result, float]]] | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None or bool(self._queue)

    def submit(self, item: list[WorkItem]) -> None:
        self._queue.append(item)
        self._start_next()

    def poll(self) -> None:
        self._collect()
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy and remaining(deadline) != 0.0:
            if self._running is not None:
                wait([self._running[1]], timeout=remaining(deadline))
            self._collect()
            self.next_step.poll()
        self.next_step.join(remaining(deadline))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.next_step.close()

    def _start_next(self) -> None:
        while self._running is None and self._queue:
            batch = self._queue.popleft()
            while self._queue and len(batch) + len(self._queue[0]) <= self._max_batch:
                batch = batch + self._queue.popleft()
            batch = [it for it in batch if self._is_live(it.envelope)]
            if batch:
                images = [it.image for it in batch if it.image is not None]
                self._running = (batch, self._pool.submit(self._run, images))

    def _collect(self) -> None:
        if self._running is None or not self._running[1].done():
            return
        batch, future = self._running
        self._running = None
        results, seconds = future.result()
        self._metrics.batch_size.observe(len(batch))
        self._metrics.batch_latency.observe(seconds)
        for item, result in zip(batch, results, strict=True):
            item.timings.inference_ms = seconds * 1000.0
            item.timings.batch_size = len(batch)
            if isinstance(result, Exception):
                failed = InferenceFailed(f"detector: {result!r}")
                self.next_step.submit(Failure.of(item.envelope, failed, event=item.event))
            else:
                item.prediction = result
                if item.image is not None:  # free the pixels (and their pixel budget) now
                    item.image = item.image.without_pixels()
                self.next_step.submit(item)
        self._start_next()

    def _run(self, images: list[DecodedImage]) -> tuple[_Result, float]:
        began = time.perf_counter()
        try:
            results: _Result = list(self._detector.predict(images))
        except Exception as exc:
            self._metrics.detector_errors.inc()
            log.warning("detector_batch_failed", size=len(images), error=repr(exc))
            results = [self._predict_one(image) for image in images]
        return results, time.perf_counter() - began

    def _predict_one(self, image: DecodedImage) -> Prediction | Exception:
        try:
            return self._detector.predict([image])[0]
        except Exception as exc:
            return exc
