"""Backpressure as a signal: when to pause the assigned partitions and when to resume them.

The poll loop keeps calling ``poll()``/``consume()`` while paused (so the consumer never
exceeds ``max.poll.interval.ms``); it only stops *fetching*. Hysteresis avoids flapping: pause
when a submit is rejected (in-flight limit reached), resume once in-flight drops to the low
watermark.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backpressure"]


@dataclass
class Backpressure:
    """Pause/resume decisions from the number of in-flight messages.

    Attributes:
        max_in_flight: submits are rejected at this many in-flight messages.
        resume_at: paused partitions are resumed at or below this many.
        paused: the current state (re-applied to new partitions in ``on_assign``).
    """

    max_in_flight: int
    resume_at: int
    paused: bool = False

    @classmethod
    def from_limit(cls, max_in_flight: int) -> Backpressure:
        """Resume at half the limit."""
        return cls(max_in_flight=max_in_flight, resume_at=max_in_flight // 2)

    def admits(self, in_flight: int) -> bool:
        """Whether one more message may enter the pipeline."""
        return in_flight < self.max_in_flight

    def on_rejected(self) -> bool:
        """A submit was rejected; return True when the partitions must be paused now."""
        if self.paused:
            return False
        self.paused = True
        return True

    def on_progress(self, in_flight: int, carrying: bool) -> bool:
        """Called each loop turn; return True when the partitions must be resumed now."""
        if self.paused and not carrying and in_flight <= self.resume_at:
            self.paused = False
            return True
        return False
