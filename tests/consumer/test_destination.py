"""The destination gate: held output, exponential back-off of the metadata probe, one
state change each way (issue 19: a missing verdict topic is not a record error)."""

from __future__ import annotations

import itertools

from consumer.kafka import BrokerCode, BrokerError
from consumer.output.destination import BACKOFF_MAX_S, DestinationGate, is_destination_error


class FakeProducer:
    def __init__(self) -> None:
        self.exists = False
        self.probes = 0

    def partitions_of(self, topic: str, timeout: float) -> list[int] | None:
        self.probes += 1
        return [0] if self.exists else None


def test_destination_errors_are_the_topics_not_the_records() -> None:
    assert is_destination_error(BrokerError(BrokerCode.UNKNOWN_TOPIC_OR_PART))
    assert is_destination_error(BrokerError(BrokerCode.TOPIC_AUTHORIZATION_FAILED))
    assert is_destination_error(BrokerError(BrokerCode.UNKNOWN_TOPIC))
    assert not is_destination_error(BrokerError(BrokerCode.MSG_SIZE_TOO_LARGE))


def test_gate_backs_off_and_reports_each_state_change_once() -> None:
    now = [0.0]
    changes: list[bool] = []
    gate = DestinationGate(changes.append, clock=lambda: now[0])
    producer = FakeProducer()
    assert gate.open(producer) and producer.probes == 0
    gate.fault("verdicts", BrokerError(BrokerCode.UNKNOWN_TOPIC_OR_PART))
    gate.fault("verdicts", BrokerError(BrokerCode.UNKNOWN_TOPIC_OR_PART))
    assert changes == [False] and gate.blocked
    probed_at = []
    while now[0] < 200:
        before = producer.probes
        assert not gate.open(producer)
        if producer.probes > before:
            probed_at.append(now[0])
        now[0] += 0.25
    gaps = [b - a for a, b in itertools.pairwise(probed_at)]
    assert gaps[:4] == [2.0, 4.0, 8.0, 16.0] and max(gaps) == BACKOFF_MAX_S
    producer.exists = True
    now[0] += BACKOFF_MAX_S
    assert gate.open(producer) and not gate.blocked
    assert changes == [False, True] and gate.episodes == 1
