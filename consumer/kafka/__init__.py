"""The Kafka seam: the only package of :mod:`consumer` that imports ``confluent_kafka``, and
none of the client library's objects leaves it.

- :mod:`~consumer.kafka.types`: what the rest of the service sees of Kafka, our own small
  types (re-exported here): :class:`PartitionOffset`, :class:`ConsumedRecord`,
  :class:`BrokerError` with its :class:`BrokerCode`, the offset constants;
- :mod:`~consumer.kafka.clients`: the small client protocols the pipeline depends on, the
  commit results and the producer handle;
- :mod:`~consumer.kafka.kafka_clients`: the real clients behind those protocols, and
  :mod:`~consumer.kafka.convert`, where the client library's objects become ours;
- :mod:`~consumer.kafka.memory`: an in-memory broker whose clients implement the same
  protocols (the behavioural suite runs on both);
- :mod:`~consumer.kafka.config`: every client configuration (service, replay, readers);
- :mod:`~consumer.kafka.admin`: the one topic creator;
- :mod:`~consumer.kafka.headers` and :mod:`~consumer.kafka.messages`: headers read without
  trusting the client, and a consumed record becomes an :class:`~consumer.items.Envelope`.
"""

from consumer.kafka.types import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    BrokerCode,
    BrokerError,
    ConsumedRecord,
    PartitionOffset,
    RecordHeaders,
)

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "OFFSET_INVALID",
    "BrokerCode",
    "BrokerError",
    "ConsumedRecord",
    "PartitionOffset",
    "RecordHeaders",
]
