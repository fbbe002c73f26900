"""The seam's own types agree with the client library they stand for (consumer/kafka/types.py
is written by hand: a misspelt error name would never match a real error)."""

from __future__ import annotations

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException

from consumer.kafka import OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, BrokerCode, BrokerError
from consumer.kafka.convert import translated


def test_every_error_code_is_a_name_of_the_client() -> None:
    assert {c.value for c in BrokerCode if not hasattr(KafkaError, c.value)} == set()


def test_offset_constants_are_the_clients() -> None:
    assert (OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID) == (
        confluent_kafka.OFFSET_BEGINNING,
        confluent_kafka.OFFSET_END,
        confluent_kafka.OFFSET_INVALID,
    )


def test_a_client_exception_is_raised_as_our_error_with_its_flags() -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    with pytest.raises(BrokerError) as info, translated():
        raise KafkaException(fenced)
    error = info.value
    assert (error.code, error.reason, error.fatal, error.retriable) == (
        BrokerCode.FENCED,
        "fenced",
        True,
        False,
    )
    assert isinstance(error.__cause__, KafkaException)
