"""Micro-batching rules (Triton-style dynamic batching): flush at max size or max wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """Collects items into batches.

    A batch is ready when it holds ``max_size`` items, or when its oldest item has waited
    ``max_wait_s``. A batch never exceeds ``max_size``.
    """

    def __init__(
        self, max_size: int, max_wait_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._items: list[T] = []
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> list[T] | None:
        """Add ``item``; return a full batch when this item filled it."""
        if not self._items:
            self._first_at = self._clock()
        self._items.append(item)
        if len(self._items) >= self.max_size:
            return self.take()
        return None

    def due_in(self) -> float | None:
        """Seconds until the current batch is due (0 if due now), None when empty."""
        if self._first_at is None:
            return None
        return max(0.0, self._first_at + self.max_wait_s - self._clock())

    def poll(self) -> list[T] | None:
        """Return the current batch if its max wait has elapsed."""
        due = self.due_in()
        if due is not None and due <= 0.0:
            return self.take()
        return None

    def take(self) -> list[T] | None:
        """Return whatever is collected (None when empty) and start a new batch."""
        if not self._items:
            return None
        batch, self._items, self._first_at = self._items, [], None
        return batch
