"""Claim-check image fetching over http(s), with hard limits and an SSRF guard.

Errors: the :class:`~consumer.errors.FetchError` family (in :mod:`consumer.errors`, which maps
each to its dead-letter code); each carries ``retryable`` and ``attempts``.

Limits: one attempt (all redirects, headers and body) has a wall-clock deadline enforced on
every socket operation; the body is streamed and abandoned past ``max_bytes``; each redirect
is re-vetted; the connection goes to the vetted address (TLS still verifies the host name);
that socket-level work is in :mod:`consumer.fetch.transport`. Only transient failures are
retried (tenacity, exponential backoff with jitter, ``Retry-After`` honoured up to the backoff
cap). One connection per fetch; thread-safe.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from consumer.errors import (
    ChecksumMismatchError,
    FetchError,
    FetchFailedError,
    FetchForbiddenError,
    FetchTimeoutError,
    FetchTooLargeError,
)
from consumer.fetch.ssrf import AddressPolicy, ForbiddenAddressError, Resolver, system_resolver
from consumer.fetch.transport import (
    ConnectError,
    PinnedConnection,
    ResolveTimeout,
    Target,
    bounded_resolver,
)
from consumer.settings import FetchSettings

__all__ = [
    "ChecksumMismatchError",
    "FetchError",
    "FetchFailedError",
    "FetchForbiddenError",
    "FetchTimeoutError",
    "FetchTooLargeError",
    "FetchedImage",
    "ImageFetcher",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchedImage:
    """A fetched body and how it was obtained."""

    data: bytes
    content_type: str | None
    final_url: str
    """URL after redirects."""
    status: int
    attempts: int
    elapsed_ms: float
    """Whole fetch, retries and backoff included."""
    sha256: str


class ImageFetcher:
    """Fetches claim-check images; safe to share between threads."""

    def __init__(
        self,
        settings: FetchSettings | None = None,
        *,
        resolver: Resolver = system_resolver,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or FetchSettings()
        self.policy = AddressPolicy.from_lists(self.settings.allow_hosts, self.settings.allow_cidrs)
        self._resolver = resolver
        self._sleep = sleep
        self._tls = ssl.create_default_context(cafile=self.settings.ca_file)

    def fetch(
        self, url: str, expected_sha256: str | None = None, expected_size: int | None = None
    ) -> bytes:
        """The image bytes at ``url`` (see :meth:`fetch_image`)."""
        return self.fetch_image(url, expected_sha256, expected_size).data

    def fetch_image(
        self, url: str, expected_sha256: str | None = None, expected_size: int | None = None
    ) -> FetchedImage:
        """Fetch ``url``, retrying transient failures; verify size/sha256 when given.

        Raises a :class:`FetchError` subclass whose ``attempts`` says how many were made.
        """
        s = self.settings
        if expected_size is not None and expected_size > s.max_bytes:
            raise FetchTooLargeError(f"event declares {expected_size} bytes, limit {s.max_bytes}")
        started = time.monotonic()
        retrying = Retrying(
            stop=stop_after_attempt(s.retries + 1) | stop_after_delay(s.max_total_s),
            wait=self._backoff,
            retry=retry_if_exception(lambda e: isinstance(e, FetchError) and e.retryable),
            sleep=self._sleep,
            reraise=True,
        )
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    deadline = min(time.monotonic() + s.timeout_s, started + s.max_total_s)
                    status, ctype, final_url, data = self._attempt(url, deadline, expected_size)
        except FetchError as exc:
            exc.attempts = attempts
            raise
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and digest != expected_sha256.lower():
            error = ChecksumMismatchError(f"sha256 of {final_url} differs from the event")
            error.attempts = attempts
            raise error
        elapsed_ms = (time.monotonic() - started) * 1000.0
        return FetchedImage(data, ctype, final_url, status, attempts, elapsed_ms, digest)

    def resolve_ref(self, ref: str) -> str:
        """The URL of an object-store key under ``object_base_url``."""
        base = self.settings.object_base_url
        if not base:
            raise FetchForbiddenError("object refs are not enabled (no fetch.object_base_url)")
        return urljoin(base if base.endswith("/") else base + "/", quote(ref, safe="/-._~"))

    def _backoff(self, state: RetryCallState) -> float:
        s = self.settings
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, FetchError) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, s.backoff_max_s)
        base = min(s.backoff_max_s, s.backoff_initial_s * 2 ** (state.attempt_number - 1))
        return base / 2 + random.uniform(0, base / 2)  # exponential, "equal jitter"

    def _attempt(
        self, url: str, deadline: float, expected_size: int | None
    ) -> tuple[int, str | None, str, bytes]:
        """One attempt: follow up to ``max_redirects`` redirects, vetting every hop."""
        current = url
        for _ in range(self.settings.max_redirects + 1):
            target = self._vet(current, deadline)
            status, headers, body = self._request(target, deadline, expected_size)
            if status not in _REDIRECTS:
                return status, headers.get("content-type"), current, body
            location = headers.get("location")
            if not location:
                raise FetchFailedError(f"HTTP {status} without Location from {current}")
            current = urljoin(current, location.strip())
        raise FetchFailedError(f"more than {self.settings.max_redirects} redirects from {url}")

    def _vet(self, url: str, deadline: float) -> Target:
        if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
            raise FetchFailedError("URL contains whitespace or control characters")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchForbiddenError(f"scheme {scheme!r} is not allowed (http, https only)")
        if parts.username is not None or parts.password is not None:
            raise FetchForbiddenError("credentials in the URL are not allowed")
        host = parts.hostname
        if not host:
            raise FetchFailedError(f"URL has no host: {url}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise FetchFailedError(f"bad port in URL: {exc}") from None
        budget = max(min(self.settings.connect_timeout_s, deadline - time.monotonic()), 0.001)
        try:
            addresses = self.policy.resolve(host, port, bounded_resolver(self._resolver, budget))
        except ResolveTimeout:
            raise FetchTimeoutError(
                f"resolving {host} took over {budget:.1f}s", retryable=True
            ) from None
        except ForbiddenAddressError as exc:
            raise FetchForbiddenError(str(exc)) from None
        except (socket.gaierror, UnicodeError) as exc:
            transient = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
            raise FetchFailedError(f"cannot resolve {host}: {exc}", retryable=transient) from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(scheme, host, port, tuple(addresses), path)

    def _request(
        self, target: Target, deadline: float, expected_size: int | None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = PinnedConnection(target, deadline, self.settings.connect_timeout_s, self._tls)
        response: http.client.HTTPResponse | None = None
        try:
            conn.request("GET", target.path, headers=self._headers())
            response = conn.getresponse()
            status = response.status
            headers = {k.lower(): v for k, v in response.getheaders()}
            if status in _REDIRECTS:
                return status, headers, b""
            _check_status(status, headers, target)
            return status, headers, self._read_body(response, headers, expected_size)
        except FetchError:
            raise
        except ConnectError as exc:
            raise FetchFailedError(
                f"cannot connect to {target.host}: {exc.__cause__}", retryable=True
            ) from None
        except TimeoutError:
            raise FetchTimeoutError(f"fetch from {target.host} exceeded its time budget") from None
        except ssl.SSLError as exc:
            raise FetchFailedError(f"TLS error with {target.host}: {exc}") from None
        except (ConnectionError, http.client.IncompleteRead) as exc:
            raise FetchFailedError(
                f"connection to {target.host} broke: {exc!r}", retryable=True
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailedError(f"bad response from {target.host}: {exc!r}") from None
        finally:
            if response is not None:
                response.close()
            conn.close()

    def _headers(self) -> dict[str, str]:
        return {
            "User-Agent": self.settings.user_agent,
            "Accept": "image/*, */*;q=0.5",
            "Accept-Encoding": "identity",
            "Connection": "close",
        }

    def _read_body(
        self, response: http.client.HTTPResponse, headers: dict[str, str], expected: int | None
    ) -> bytes:
        limit = self.settings.max_bytes
        declared = _int_or_none(headers.get("content-length"))
        if declared is not None and declared > limit:
            raise FetchTooLargeError(f"Content-Length {declared} exceeds the limit {limit}")
        if declared is not None and expected is not None and declared != expected:
            raise ChecksumMismatchError(f"Content-Length {declared}, event says {expected}")
        chunks: list[bytes] = []
        total = 0
        while chunk := response.read(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise FetchTooLargeError(f"body exceeds the limit of {limit} bytes")
            if expected is not None and total > expected:
                raise ChecksumMismatchError(f"body exceeds the {expected} bytes the event says")
            chunks.append(chunk)
        if declared is not None and total != declared:
            raise FetchFailedError(f"body ended after {total} of {declared} bytes", retryable=True)
        if expected is not None and total != expected:
            raise ChecksumMismatchError(f"body is {total} bytes, event says {expected}")
        return b"".join(chunks)


def _check_status(status: int, headers: dict[str, str], target: Target) -> None:
    if status == 429 or 500 <= status <= 599:
        retry_after = _int_or_none(headers.get("retry-after"))
        raise FetchFailedError(
            f"HTTP {status} from {target.host}",
            retryable=True,
            retry_after_s=float(retry_after) if retry_after is not None else None,
        )
    if not 200 <= status < 300 or status in (204, 206):
        raise FetchFailedError(f"HTTP {status} from {target.host}{target.path}")


def _int_or_none(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())
