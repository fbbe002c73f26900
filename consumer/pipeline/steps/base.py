"""The step lifecycle (after arroyo's ``ProcessingStrategy``).

A pipeline is a chain of steps, each owning an explicit ``next_step``. The poll loop calls
``submit`` on the head for every message and ``poll`` on every loop turn; both return quickly.

- ``submit(item)``: hand one item over; never refuses it. Admission (backpressure) is the
  poll loop's decision, before the head's ``submit``: see :mod:`consumer.pipeline.backpressure`.
- ``poll()``: non-blocking; move finished work downstream, then ``poll`` the next step.
- ``join(timeout)``: flush everything buffered and wait (at most ``timeout`` seconds, None =
  no limit) until this step and then the next ones are drained.
- ``close()``: release resources (threads, pools); no ``submit`` afterwards. Does not wait.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

__all__ = ["ProcessingStep", "remaining"]

TIn = TypeVar("TIn", contravariant=True)


class ProcessingStep(ABC, Generic[TIn]):
    """One stage of the pipeline."""

    @abstractmethod
    def submit(self, item: TIn) -> None: ...

    @abstractmethod
    def poll(self) -> None: ...

    @abstractmethod
    def join(self, timeout: float | None = None) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (a ``time.monotonic`` value), None for no deadline."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
