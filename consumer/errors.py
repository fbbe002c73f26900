"""Exceptions of the consumer service.

Hierarchy (three kinds of failure, three types, as in arroyo)::

    ConsumerError              base of everything raised on purpose here
    ├── MessageRejected        flow control: a step cannot take the item now; retry it later
    ├── InvalidMessage         poison input: the item becomes a dead letter, the stream goes on
    └── ConfigurationError     the service cannot start (bad settings, checkpoint hash mismatch)

Transport errors from librdkafka (``KafkaException``/``KafkaError``) are handled where they
happen: retriable ones are retried, delivery failures are re-produced, fatal ones stop the loop.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "ConsumerError", "InvalidMessage", "MessageRejected"]


class ConsumerError(Exception):
    """Base class of the errors raised deliberately by :mod:`consumer`."""


class MessageRejected(ConsumerError):
    """Backpressure signal: the step is full; the caller keeps the item and retries later."""


class InvalidMessage(ConsumerError):
    """A message that can never be processed; it becomes a dead letter with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigurationError(ConsumerError):
    """The service cannot start with the given settings."""
