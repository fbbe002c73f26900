"""Backpressure as a signal: when to pause the assigned partitions and when to resume them.

The poll loop keeps calling ``poll()``/``consume()`` while paused (so the consumer never
exceeds ``max.poll.interval.ms``); it only stops *fetching*. Hysteresis avoids flapping: pause
when a submit is rejected (in-flight limit reached), resume once in-flight drops to the low
watermark.

Two limits: messages in flight, and bytes of decoded pixels (:class:`PixelBudget`). A small
file can decode to 100 Mpx (300 MB), so the message count alone does not bound memory: the
decode workers reserve bytes from the budget from the image header *before* decoding (and
wait while it is full), and the loop stops admitting messages while the budget is full.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backpressure", "PixelBudget", "Reservation"]


class PixelBudget:
    """Bytes of decoded pixels held in the pipeline, at most ``capacity`` (thread-safe).

    A reservation larger than the whole budget is granted only when nothing else is held (one
    huge image is decoded alone rather than never). ``peak`` is the most ever held.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.held = 0
        self.peak = 0
        self._closed = False
        # Re-entrant: a reservation may be released by a finalizer run by the garbage
        # collector on a thread that is inside reserve().
        self._cond = threading.Condition(threading.RLock())

    @property
    def full(self) -> bool:
        return self.held >= self.capacity

    def reserve(
        self, nbytes: int, keep_waiting: Callable[[], bool] = lambda: True, poll_s: float = 0.5
    ) -> Reservation | None:
        """Block until ``nbytes`` fit; None once ``keep_waiting()`` is False or on close."""
        with self._cond:
            while not self._closed and self.held > 0 and self.held + nbytes > self.capacity:
                if not keep_waiting():
                    return None
                self._cond.wait(poll_s)
            if self._closed:
                return None
            self._add(nbytes)
        return Reservation(self, nbytes)

    def close(self) -> None:
        """Wake every waiter: they get None (the pipeline is shutting down)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _add(self, delta: int) -> None:
        with self._cond:
            self.held += delta
            self.peak = max(self.peak, self.held)
            if delta < 0:
                self._cond.notify_all()


class Reservation:
    """Bytes taken from a :class:`PixelBudget`; shrink it once decoded, tie it to the tensor."""

    def __init__(self, budget: PixelBudget, nbytes: int) -> None:
        self._budget = budget
        self._lock = threading.Lock()
        self.nbytes = nbytes

    def shrink(self, nbytes: int) -> None:
        """Keep only ``nbytes`` (the decoded result) of the decode-time reservation."""
        with self._lock:
            freed, self.nbytes = max(0, self.nbytes - nbytes), min(self.nbytes, nbytes)
        if freed:
            self._budget._add(-freed)

    def release(self) -> None:
        """Give everything back (idempotent)."""
        with self._lock:
            freed, self.nbytes = self.nbytes, 0
        if freed:
            self._budget._add(-freed)

    def release_with(self, owner: object) -> None:
        """Release when ``owner`` (the pixel tensor) is garbage-collected."""
        weakref.finalize(owner, self.release)


@dataclass
class Backpressure:
    """Pause/resume decisions from the number of in-flight messages and the pixel budget.

    Attributes:
        max_in_flight: submits are rejected at this many in-flight messages.
        resume_at: paused partitions are resumed at or below this many.
        pixels: decoded-pixel budget; submits are also rejected while it is full, and
            partitions resume only once it is at most half full.
        paused: the current state (re-applied to new partitions in ``on_assign``).
    """

    max_in_flight: int
    resume_at: int
    pixels: PixelBudget | None = None
    paused: bool = False

    @classmethod
    def from_limit(cls, max_in_flight: int, max_pixel_bytes: int | None = None) -> Backpressure:
        """Resume at half the limit(s)."""
        budget = None if max_pixel_bytes is None else PixelBudget(max_pixel_bytes)
        return cls(max_in_flight=max_in_flight, resume_at=max_in_flight // 2, pixels=budget)

    def admits(self, in_flight: int) -> bool:
        """Whether one more message may enter the pipeline."""
        return in_flight < self.max_in_flight and (self.pixels is None or not self.pixels.full)

    def on_rejected(self) -> bool:
        """A submit was rejected; return True when the partitions must be paused now."""
        if self.paused:
            return False
        self.paused = True
        return True

    def on_progress(self, in_flight: int, carrying: bool) -> bool:
        """Called each loop turn; return True when the partitions must be resumed now."""
        pixels_low = self.pixels is None or self.pixels.held <= self.pixels.capacity // 2
        if self.paused and not carrying and in_flight <= self.resume_at and pixels_low:
            self.paused = False
            return True
        return False
