"""Parse step: Kafka message -> validated image CloudEvent, or a dead letter."""

from __future__ import annotations

from collections.abc import Collection

from consumer.errors import UnreadableHeaders
from consumer.items import Envelope, Failure, Outcome, WorkItem
from consumer.pipeline.steps.base import ProcessingStep
from schemas import parse_image_event

__all__ = ["ParseStep"]


class ParseStep(ProcessingStep[Envelope]):
    """Synchronous and cheap: bad messages go straight to ``dead_letters``."""

    def __init__(
        self,
        next_step: ProcessingStep[WorkItem],
        dead_letters: ProcessingStep[Outcome],
        expected_types: Collection[str] | None = None,
    ) -> None:
        self.next_step = next_step
        self._dead_letters = dead_letters
        self._expected_types = expected_types

    def submit(self, item: Envelope) -> None:
        try:
            if item.header_error is not None:  # e.g. a header name that is not UTF-8
                raise UnreadableHeaders(item.header_error)
            parsed = parse_image_event(
                item.value, list(item.headers), expected_types=self._expected_types
            )
        except Exception as exc:  # EventError names its rule; anything else is internal
            self._dead_letters.submit(Failure.of(item, exc))
            return
        self.next_step.submit(WorkItem(envelope=item, event=parsed))

    def poll(self) -> None:
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        self.next_step.join(timeout)

    def close(self) -> None:
        self.next_step.close()
