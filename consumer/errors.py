"""Exceptions of the consumer, and the one table from exception to dead-letter code.

Hierarchy::

    ConsumerError                  base of everything raised on purpose here
    ├── ConfigurationError         the service cannot start (bad settings, missing or corrupt
    │                              checkpoint, checkpoint hash mismatch): exit code 2
    ├── KafkaAccessError           the cluster refuses this service: SASL authentication, TLS
    │                              trust or a missing ACL (which resource, which operation):
    │                              exit code 3
    └── InvalidMessage             one message fails for good: it becomes a dead letter
        ├── UnreadableHeaders      schema_violation    the client cannot decode its headers
        ├── InferenceFailed        inference_failed    the detector raised on this image
        ├── VerdictBuildFailed     internal_error      the verdict could not be built
        ├── OutputRejected         output_rejected     the verdict topic refused the verdict
        └── FetchError             fetch_failed        claim-check fetch (consumer.fetch)
            ├── FetchFailedError       fetch_failed       HTTP error status, DNS, connection,
            │                                             TLS, too many redirects (retried:
            │                                             5xx/429/connect)
            ├── FetchForbiddenError    fetch_forbidden    scheme, credentials in URL, SSRF
            │                                             guard, object refs not enabled
            ├── FetchTimeoutError      fetch_timeout      the attempt's wall-clock budget ran out
            ├── FetchTooLargeError     fetch_too_large    declared or streamed body too large
            └── ChecksumMismatchError  checksum_mismatch  size or sha256 differ from the event

Steps raise (or catch and hand over) exceptions; :func:`error_code` is the only place that
turns an exception into a :class:`~schemas.ErrorCode`. Two foreign families map through the
same table: :class:`schemas.EventError` (the wire library names the parse rule that failed in
its ``code``) and the detector's :class:`~detector.ImageError` subclasses. Anything else is an
``internal_error``.

Flow control is not an exception: admission is decided by the poll loop
(:class:`~consumer.pipeline.backpressure.Backpressure` and the pixel budget). Transport errors from
librdkafka are handled inside :mod:`consumer.kafka` and the commit steps.
"""

from __future__ import annotations

from detector.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from schemas import ErrorCode, EventError

__all__ = [
    "ChecksumMismatchError",
    "ConfigurationError",
    "ConsumerError",
    "FetchError",
    "FetchFailedError",
    "FetchForbiddenError",
    "FetchTimeoutError",
    "FetchTooLargeError",
    "InferenceFailed",
    "InvalidMessage",
    "KafkaAccessError",
    "OutputRejected",
    "UnreadableHeaders",
    "VerdictBuildFailed",
    "error_code",
    "error_message",
]


class ConsumerError(Exception):
    """Base class of the errors raised deliberately by :mod:`consumer`."""


class ConfigurationError(ConsumerError):
    """The service cannot start with the given settings."""


class KafkaAccessError(ConsumerError):
    """The cluster refuses this service: wrong credentials, an untrusted broker certificate,
    or a missing ACL. Retrying cannot help; the message says what failed and where to look."""

    exit_code = 3


class InvalidMessage(ConsumerError):
    """A message that can never be processed; it becomes a dead letter.

    ``attempts`` says how many tries were made before giving up (fetch retries).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.attempts = 1


class UnreadableHeaders(InvalidMessage):
    """The Kafka client cannot decode the message's headers (e.g. a name that is not UTF-8)."""


class InferenceFailed(InvalidMessage):
    """The detector failed on this image, also when scored alone."""


class VerdictBuildFailed(InvalidMessage):
    """The verdict of a scored image could not be built (a bug, never the input's fault)."""


class OutputRejected(InvalidMessage):
    """The verdict was refused for good by the output topic; its dead letter says why."""


class FetchError(InvalidMessage):
    """Base of claim-check fetch failures."""

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class FetchFailedError(FetchError):
    """The server or network failed, or the response was unusable."""


class FetchForbiddenError(FetchError):
    """The URL is refused by policy before any connection is made."""


class FetchTimeoutError(FetchError):
    """The attempt's wall-clock budget ran out."""


class FetchTooLargeError(FetchError):
    """The body is larger than ``max_bytes``."""


class ChecksumMismatchError(FetchError):
    """The body differs from the size or sha256 declared in the event."""


_CODES: tuple[tuple[type[Exception], ErrorCode], ...] = (
    (UnreadableHeaders, ErrorCode.SCHEMA_VIOLATION),
    (InferenceFailed, ErrorCode.INFERENCE_FAILED),
    (VerdictBuildFailed, ErrorCode.INTERNAL_ERROR),
    (OutputRejected, ErrorCode.OUTPUT_REJECTED),
    (FetchForbiddenError, ErrorCode.FETCH_FORBIDDEN),
    (FetchTimeoutError, ErrorCode.FETCH_TIMEOUT),
    (FetchTooLargeError, ErrorCode.FETCH_TOO_LARGE),
    (ChecksumMismatchError, ErrorCode.CHECKSUM_MISMATCH),
    (FetchError, ErrorCode.FETCH_FAILED),
    (ImageTooLargeError, ErrorCode.IMAGE_TOO_LARGE),
    (UnsupportedImageError, ErrorCode.UNSUPPORTED_MEDIA),
    (ImageError, ErrorCode.IMAGE_DECODE_ERROR),
)
"""Exception type -> dead-letter code; the first match wins (subclasses before bases)."""


def error_code(exc: Exception) -> ErrorCode:
    """The dead-letter code of ``exc`` (see the module docstring)."""
    if isinstance(exc, EventError):
        return exc.code
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return ErrorCode.INTERNAL_ERROR


def error_message(exc: Exception) -> str:
    """The dead letter's human-readable reason for ``exc``."""
    if isinstance(exc, EventError):
        return exc.message
    if isinstance(exc, ConsumerError | ImageError):
        return str(exc) or type(exc).__name__
    return repr(exc)
