"""Which offsets may be committed: the at-least-once ordering rule, per partition.

A message is *registered* when the pipeline accepts it and *done* when its verdict or dead
letter is confirmed delivered. The committable offset of a partition is ``N + 1`` where ``N``
is the highest offset such that every registered message ``<= N`` is done; deliveries may be
confirmed in any order. Each assignment of a partition gets a new *epoch*; confirmations that
carry an older epoch (the partition was revoked meanwhile) are ignored.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["CommitTracker", "Partition"]

Partition = tuple[str, int]


@dataclass
class _PartitionState:
    epoch: int
    pending: deque[int] = field(default_factory=deque)
    done: set[int] = field(default_factory=set)
    highest: int | None = None
    committed: int | None = None

    def advance(self) -> int | None:
        """Drop the done prefix of ``pending``; return the committable offset (or None)."""
        while self.pending and self.pending[0] in self.done:
            self.done.discard(self.pending.popleft())
        if self.pending:
            return self.pending[0]
        return None if self.highest is None else self.highest + 1


class CommitTracker:
    """Per-partition bookkeeping of in-flight offsets; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epochs = itertools.count(1)
        self._parts: dict[Partition, _PartitionState] = {}

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Start tracking ``partitions`` with a fresh epoch (forgetting any previous state)."""
        with self._lock:
            for tp in partitions:
                self._parts[tp] = _PartitionState(epoch=next(self._epochs))

    def revoke(self, partitions: Iterable[Partition]) -> int:
        """Stop tracking ``partitions``; return how many of their messages were still in flight."""
        dropped = 0
        with self._lock:
            for tp in partitions:
                state = self._parts.pop(tp, None)
                if state is not None:
                    dropped += len(state.pending) - len(state.done)
        return dropped

    def assigned(self) -> list[Partition]:
        with self._lock:
            return list(self._parts)

    def register(self, tp: Partition, offset: int) -> int:
        """Record that ``offset`` entered the pipeline; return the partition's epoch.

        A :meth:`done` for ``offset`` may come before its registration (same epoch): it counts.

        Raises:
            KeyError: the partition is not assigned.
            ValueError: offsets of a partition must be registered in increasing order.
        """
        with self._lock:
            state = self._parts[tp]
            if state.highest is not None and offset <= state.highest:
                raise ValueError(f"{tp}: offset {offset} registered after {state.highest}")
            state.pending.append(offset)
            state.highest = offset
            return state.epoch

    def regresses(self, tp: Partition, offset: int) -> int | None:
        """The highest offset registered in ``tp`` when ``offset`` is not above it (the
        partition's offsets started over: its topic was deleted and re-created), else None."""
        with self._lock:
            state = self._parts.get(tp)
            if state is None or state.highest is None or offset > state.highest:
                return None
            return state.highest

    def restart(self, tp: Partition) -> int:
        """Forget ``tp``'s bookkeeping (its in-flight work is dropped: a new epoch); the new
        epoch."""
        with self._lock:
            state = _PartitionState(epoch=next(self._epochs))
            self._parts[tp] = state
            return state.epoch

    def epoch(self, tp: Partition) -> int:
        """The current epoch of ``tp``; KeyError when it is not assigned."""
        with self._lock:
            return self._parts[tp].epoch

    def is_current(self, tp: Partition, epoch: int) -> bool:
        """Whether ``epoch`` is the live assignment of ``tp`` (False after a revoke)."""
        with self._lock:
            state = self._parts.get(tp)
            return state is not None and state.epoch == epoch

    def done(self, tp: Partition, offset: int, epoch: int) -> bool:
        """Mark ``offset`` as delivered; False (and ignored) when the epoch is stale."""
        with self._lock:
            state = self._parts.get(tp)
            if state is None or state.epoch != epoch:
                return False
            state.done.add(offset)
            return True

    def committable(self, partitions: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Offsets to commit now: those that advanced past the last committed ones."""
        with self._lock:
            wanted = self._parts if partitions is None else set(partitions) & set(self._parts)
            result: dict[Partition, int] = {}
            for tp in wanted:
                state = self._parts[tp]
                offset = state.advance()
                if offset is not None and offset != state.committed:
                    result[tp] = offset
            return result

    def mark_committed(self, offsets: dict[Partition, int]) -> None:
        """Record offsets handed to the broker (so they are not sent again)."""
        with self._lock:
            for tp, offset in offsets.items():
                state = self._parts.get(tp)
                if state is not None and (state.committed is None or offset > state.committed):
                    state.committed = offset

    def committed_offsets(self) -> dict[Partition, int]:
        """The offsets committed in the current assignment of each partition (when any)."""
        with self._lock:
            return {
                tp: state.committed
                for tp, state in self._parts.items()
                if state.committed is not None
            }

    def forget_committed(self, partitions: Iterable[Partition]) -> None:
        """A commit failed: send those partitions' offsets again next time."""
        with self._lock:
            for tp in partitions:
                state = self._parts.get(tp)
                if state is not None:
                    state.committed = None

    def in_flight(self, partitions: Iterable[Partition] | None = None) -> int:
        """Messages registered and not yet done (for all or the given partitions)."""
        with self._lock:
            wanted = self._parts if partitions is None else set(partitions) & set(self._parts)
            return sum(
                max(0, len(self._parts[tp].pending) - len(self._parts[tp].done)) for tp in wanted
            )
