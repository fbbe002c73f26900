"""The closed set of error codes carried by dead letters, and the error raised by the codecs.

Every bad input ends as exactly one dead letter with one :class:`ErrorCode`. Codes are part of
the wire contract: add new ones freely, never remove or rename one.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a message could not be turned into a verdict."""

    INVALID_JSON = "invalid_json"
    """The value (or a JSON header) is not valid UTF-8 JSON where JSON is required."""
    SCHEMA_VIOLATION = "schema_violation"
    """Valid JSON or headers, but not a valid CloudEvent (missing/bad attributes or fields)."""
    UNSUPPORTED_MEDIA = "unsupported_media"
    """Content type (or decoded image format) that the service does not accept."""
    MISSING_IMAGE = "missing_image"
    """The event names no image: no URL, no object ref, no inline bytes, or an empty value."""
    IMAGE_DECODE_ERROR = "image_decode_error"
    """The bytes are not a decodable image (corrupt, truncated, not an image)."""
    IMAGE_TOO_LARGE = "image_too_large"
    """The image exceeds the byte, pixel or side limits (including decompression bombs)."""
    FETCH_FAILED = "fetch_failed"
    """The URL could not be fetched (HTTP error, DNS, connection, too many redirects)."""
    FETCH_FORBIDDEN = "fetch_forbidden"
    """The URL was refused by policy: scheme, credentials, or an address the SSRF guard blocks."""
    FETCH_TIMEOUT = "fetch_timeout"
    """The fetch exceeded its time budget."""
    FETCH_TOO_LARGE = "fetch_too_large"
    """The fetched body exceeded the byte limit (declared or streamed)."""
    CHECKSUM_MISMATCH = "checksum_mismatch"
    """The image bytes do not match the sha256 or size declared in the event."""
    INFERENCE_FAILED = "inference_failed"
    """The detector raised on this image (the rest of its batch was retried without it)."""
    OUTPUT_REJECTED = "output_rejected"
    """The verdict could not be written: the output topic refused it for good (size, policy)."""
    INTERNAL_ERROR = "internal_error"
    """A bug or unexpected failure in the service; the message itself may be fine."""


class EventError(ValueError):
    """A message that cannot be parsed into an event; ``code`` says which dead-letter reason."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
