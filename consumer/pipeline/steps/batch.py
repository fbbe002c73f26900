"""Micro-batch step: collects decoded images into batches for the detector."""

from __future__ import annotations

import time

from consumer.items import WorkItem
from consumer.pipeline.micro_batching import MicroBatcher
from consumer.pipeline.steps.base import ProcessingStep

__all__ = ["BatchStep"]


class BatchStep(ProcessingStep[WorkItem]):
    """Forwards a batch when it reaches ``max_size`` items or its oldest waited ``max_wait_s``."""

    def __init__(
        self, next_step: ProcessingStep[list[WorkItem]], max_size: int, max_wait_s: float
    ) -> None:
        self.next_step = next_step
        self._batcher: MicroBatcher[WorkItem] = MicroBatcher(max_size, max_wait_s)

    def due_in(self) -> float | None:
        """Seconds until the pending batch is due (lets the loop shorten its poll timeout)."""
        return self._batcher.due_in()

    def submit(self, item: WorkItem) -> None:
        batch = self._batcher.add(item)
        if batch is not None:
            self.next_step.submit(batch)

    def poll(self) -> None:
        batch = self._batcher.poll()
        if batch is not None:
            self.next_step.submit(batch)
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        began = time.monotonic()
        batch = self._batcher.take()
        if batch is not None:
            self.next_step.submit(batch)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - began))
        self.next_step.join(left)

    def close(self) -> None:
        self.next_step.close()
