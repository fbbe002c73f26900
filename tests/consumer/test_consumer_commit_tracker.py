"""The at-least-once ordering rule: commit N+1 only when every message <= N is delivered."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.pipeline.commit_tracker import CommitTracker

TP = ("t", 0)


def tracker_with(offsets: list[int]) -> tuple[CommitTracker, int]:
    tracker = CommitTracker()
    tracker.assign([TP])
    epoch = tracker.epoch(TP)
    for offset in offsets:
        tracker.register(TP, offset)
    return tracker, epoch


def test_nothing_committable_until_the_first_message_is_done() -> None:
    tracker, epoch = tracker_with([10, 11, 12])
    assert tracker.committable() == {TP: 10}  # harmless: the position we started from
    tracker.mark_committed({TP: 10})
    tracker.done(TP, 11, epoch)
    tracker.done(TP, 12, epoch)
    assert tracker.committable() == {}  # 10 still in flight: 11 and 12 must wait
    tracker.done(TP, 10, epoch)
    assert tracker.committable() == {TP: 13}
    assert tracker.in_flight() == 0


def test_out_of_order_deliveries_advance_only_over_a_done_prefix() -> None:
    tracker, epoch = tracker_with([0, 1, 2, 3, 4])
    tracker.mark_committed({TP: 0})
    for offset, expected in [(3, {}), (1, {}), (0, {TP: 2}), (4, {}), (2, {TP: 5})]:
        tracker.done(TP, offset, epoch)
        assert tracker.committable() == expected
        tracker.mark_committed(expected)
    assert tracker.committable() == {}
    tracker.forget_committed([TP])
    assert tracker.committable() == {TP: 5}


def test_gaps_in_offsets_are_fine() -> None:
    tracker, epoch = tracker_with([5, 9, 20])  # compaction or transaction markers
    for offset in (9, 20, 5):
        tracker.done(TP, offset, epoch)
    assert tracker.committable() == {TP: 21}


def test_stale_epoch_is_ignored_after_revoke_and_reassign() -> None:
    tracker, old = tracker_with([0, 1])
    assert tracker.revoke([TP]) == 2
    tracker.assign([TP])
    new = tracker.epoch(TP)
    assert new != old
    assert not tracker.is_current(TP, old)
    assert tracker.done(TP, 0, old) is False
    tracker.register(TP, 0)
    assert tracker.committable() == {TP: 0}
    assert tracker.done(TP, 0, new) is True
    assert tracker.committable() == {TP: 1}


def test_done_before_register_counts() -> None:
    tracker, epoch = tracker_with([])
    tracker.done(TP, 0, epoch)
    tracker.register(TP, 0)
    assert tracker.committable() == {TP: 1}


def test_registration_must_increase() -> None:
    tracker, _ = tracker_with([3])
    with pytest.raises(ValueError):
        tracker.register(TP, 3)
    with pytest.raises(KeyError):
        tracker.register(("other", 0), 0)


def test_partitions_are_independent() -> None:
    tracker = CommitTracker()
    a, b = ("t", 0), ("t", 1)
    tracker.assign([a, b])
    for offset in range(3):
        tracker.register(a, offset)
        tracker.register(b, offset)
    tracker.done(b, 0, tracker.epoch(b))
    assert tracker.committable([b]) == {b: 1}
    assert tracker.in_flight([a]) == 3
    assert tracker.in_flight() == 5


@given(st.lists(st.integers(1, 3), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_committed_offset_never_passes_an_undelivered_message(
    steps: list[int], rnd: random.Random
) -> None:
    offsets = []
    current = 0
    for step in steps:
        current += step
        offsets.append(current)
    tracker, epoch = tracker_with(offsets)
    order = offsets[:]
    rnd.shuffle(order)
    delivered: set[int] = set()
    for offset in order:
        tracker.done(TP, offset, epoch)
        delivered.add(offset)
        commit = tracker.committable().get(TP)
        if commit is not None:
            tracker.mark_committed({TP: commit})
            assert all(o in delivered for o in offsets if o < commit)
            undelivered = [o for o in offsets if o not in delivered]
            assert commit == (min(undelivered) if undelivered else offsets[-1] + 1)
    assert tracker.in_flight() == 0
