"""Micro-batch rules: flush at max size or max wait, never bigger than max size."""

from __future__ import annotations

import pytest

from consumer.pipeline.micro_batching import MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_full_batch_is_returned_by_the_add_that_fills_it() -> None:
    batcher: MicroBatcher[int] = MicroBatcher(3, 10.0, Clock())
    assert batcher.add(1) is None
    assert batcher.add(2) is None
    assert batcher.add(3) == [1, 2, 3]
    assert len(batcher) == 0
    assert batcher.add(4) is None
    assert len(batcher) == 1


def test_partial_batch_is_due_after_max_wait_from_its_first_item() -> None:
    clock = Clock()
    batcher: MicroBatcher[str] = MicroBatcher(8, 0.05, clock)
    assert batcher.due_in() is None
    batcher.add("a")
    clock.now += 0.03
    batcher.add("b")
    assert batcher.poll() is None
    assert batcher.due_in() == pytest.approx(0.02)
    clock.now += 0.02
    assert batcher.poll() == ["a", "b"]
    assert batcher.poll() is None
    assert batcher.due_in() is None


def test_wait_restarts_with_the_next_batch() -> None:
    clock = Clock()
    batcher: MicroBatcher[int] = MicroBatcher(2, 1.0, clock)
    batcher.add(1)
    clock.now += 0.9
    assert batcher.add(2) == [1, 2]
    batcher.add(3)
    clock.now += 0.5
    assert batcher.poll() is None  # 3's own wait started at its add
    clock.now += 0.5
    assert batcher.poll() == [3]


def test_zero_wait_flushes_on_every_poll_and_take_empties() -> None:
    batcher: MicroBatcher[int] = MicroBatcher(4, 0.0, Clock())
    batcher.add(1)
    assert batcher.poll() == [1]
    assert batcher.take() is None
    batcher.add(2)
    assert batcher.take() == [2]


@pytest.mark.parametrize("size", [1, 2, 5])
def test_never_exceeds_max_size(size: int) -> None:
    batcher: MicroBatcher[int] = MicroBatcher(size, 1.0, Clock())
    batches = [b for i in range(23) if (b := batcher.add(i)) is not None]
    assert all(len(b) == size for b in batches)
    rest = batcher.take() or []
    assert [x for b in batches for x in b] + rest == list(range(23))


def test_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(0, 1.0)
    with pytest.raises(ValueError):
        MicroBatcher(1, -1.0)
