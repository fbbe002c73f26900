"""Socket-level transport of claim-check fetches: one HTTP(S) connection to an already vetted
address, with a wall-clock deadline on every socket operation, and DNS lookups with a budget.

Used by :class:`consumer.fetch.claim_check.ImageFetcher` (which vets URLs, retries and checks
bodies).
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from consumer.fetch.ssrf import IPAddress, Resolver

__all__ = ["ConnectError", "PinnedConnection", "ResolveTimeout", "Target", "bounded_resolver"]


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    path: str


class ConnectError(Exception):
    """Connecting failed (refused, unreachable, connect timeout): a transient failure."""


class PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to a vetted address, with a deadline on every socket operation."""

    def __init__(
        self, target: Target, deadline: float, connect_timeout: float, tls: ssl.SSLContext
    ) -> None:
        super().__init__(target.host, target.port)
        self.default_port = 443 if target.scheme == "https" else 80  # Host header form
        self._target = target
        self._deadline = deadline
        self._connect_timeout = connect_timeout
        self._tls = tls

    def connect(self) -> None:
        last: OSError | None = None
        for address in self._target.addresses:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline reached while connecting")
            try:
                sock = socket.create_connection(
                    (str(address), self._target.port), timeout=min(self._connect_timeout, remaining)
                )
            except OSError as exc:
                last = exc
                continue
            if self._target.scheme == "https":
                sock.settimeout(max(self._deadline - time.monotonic(), 0.001))
                sock = self._tls.wrap_socket(sock, server_hostname=self._target.host)
            self.sock = DeadlineSocket(sock, self._deadline)
            return
        raise ConnectError() from last


class DeadlineSocket:
    """Socket facade for http.client: each send/recv gets the time left until the deadline.

    Like a real socket, it stays open while a file made by :meth:`makefile` is open, because
    http.client closes the connection before the body of a ``Connection: close`` response is read.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._files = 0
        self._closing = False

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        self._sock.settimeout(remaining)

    def sendall(self, data: Any) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._files += 1
        return io.BufferedReader(DeadlineReader(self))

    def file_closed(self) -> None:
        self._files -= 1
        if self._closing and self._files <= 0:
            self._sock.close()

    def close(self) -> None:
        self._closing = True
        if self._files <= 0:
            self._sock.close()


class DeadlineReader(io.RawIOBase):
    def __init__(self, sock: DeadlineSocket) -> None:
        self._sock: DeadlineSocket | None = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._sock is None:
            raise ValueError("I/O operation on closed file")
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.file_closed()
        super().close()


# getaddrinfo has no timeout of its own (the system resolver may take ~10 s or more): lookups
# run on a small shared pool and the fetch gives up after its budget. A stuck lookup keeps
# one pool thread until the OS gives up, so the pool stays small and bounded.
_DNS_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="synthscan-dns")


class ResolveTimeout(Exception):
    """A DNS lookup took longer than its budget."""


def bounded_resolver(resolver: Resolver, timeout_s: float) -> Resolver:
    """``resolver`` that raises :class:`ResolveTimeout` after ``timeout_s`` seconds."""

    def resolve(host: str, port: int) -> Sequence[str]:
        future = _DNS_POOL.submit(resolver, host, port)
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            future.cancel()
            raise ResolveTimeout(host) from None

    return resolve
