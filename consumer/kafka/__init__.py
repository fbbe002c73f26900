"""The Kafka seam: everything that touches ``confluent_kafka`` directly."""

from consumer.kafka.headers import HeaderError, read_headers

__all__ = ["HeaderError", "read_headers"]
