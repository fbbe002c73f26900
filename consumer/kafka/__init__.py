"""The Kafka seam: the only package of :mod:`consumer` that imports ``confluent_kafka``.

- the client types, re-exported here (:class:`Consumer`, :class:`Producer`, :class:`Message`,
  :class:`TopicPartition`, :class:`KafkaError`, :class:`KafkaException`, the offset constants);
- :mod:`~consumer.kafka.config`: every client configuration (service, replay, readers);
- :mod:`~consumer.kafka.admin`: the one topic creator;
- :mod:`~consumer.kafka.headers` and :mod:`~consumer.kafka.messages`: a consumed message
  becomes an :class:`~consumer.items.Envelope`, detached from librdkafka;
- :mod:`~consumer.kafka.clients`: the small client protocols the pipeline depends on, the
  commit results and the producer handle;
- :mod:`~consumer.kafka.memory`: an in-memory broker whose clients implement those protocols
  (fast tests of the whole pipeline without a broker).
"""

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from consumer.kafka.headers import HeaderError, read_headers

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "TIMESTAMP_NOT_AVAILABLE",
    "Consumer",
    "HeaderError",
    "KafkaError",
    "KafkaException",
    "Message",
    "Producer",
    "TopicPartition",
    "read_headers",
]
