"""Carried messages are offered round-robin by partition, in order within each."""

from __future__ import annotations

from consumer.items import Envelope
from consumer.serving.carried import CarriedMessages


def _env(partition: int, offset: int) -> Envelope:
    return Envelope(
        topic="in",
        partition=partition,
        offset=offset,
        key=None,
        value=b"",
        headers=[],
        timestamp_ms=None,
        epoch=1,
    )


def _drain(carried: CarriedMessages) -> list[tuple[int, int]]:
    out = []
    while carried:
        env = carried.peek()
        assert carried.pop() is env
        out.append((env.partition, env.offset))
    return out


def test_a_run_of_one_partition_does_not_hold_back_the_next() -> None:
    carried = CarriedMessages()
    for offset in range(4):
        carried.append(_env(0, offset))
    for offset in range(2):
        carried.append(_env(1, offset))
    assert len(carried) == 6
    assert _drain(carried) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (0, 3)]


def test_dropped_partitions_are_forgotten_and_the_rest_keep_their_order() -> None:
    carried = CarriedMessages()
    for partition in range(3):
        for offset in range(2):
            carried.append(_env(partition, offset))
    carried.drop([("in", 1)])
    assert [(e.partition, e.offset) for e in carried] == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert _drain(carried) == [(0, 0), (2, 0), (0, 1), (2, 1)]
    assert not carried and len(carried) == 0


def test_a_partition_whose_messages_come_later_goes_ahead_of_the_one_just_served() -> None:
    carried = CarriedMessages()
    for offset in range(4):
        carried.append(_env(0, offset))
    carried.pop()
    carried.pop()  # partition 0 served twice; then partition 1's messages arrive
    carried.append(_env(1, 0))
    carried.append(_env(1, 1))
    assert _drain(carried) == [(1, 0), (0, 2), (1, 1), (0, 3)]
