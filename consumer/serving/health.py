"""Liveness, readiness and metrics over a small HTTP server with bounded resources.

- ``/healthz``: 200 iff the poll loop's heartbeat is fresh (never a broker check).
- ``/readyz``: 200 iff the model is loaded and warm, partitions are assigned, none is stuck
  behind an undeliverable record (its output and its dead letter were both refused for good),
  and the output topics are writable (not missing, deleted or unauthorized:
  :mod:`consumer.output.destination`).
- ``/metrics``: Prometheus text format.

Requests are served by a fixed pool of threads; a request must arrive within
``request_timeout_s``; connections beyond ``workers + backlog`` waiting ones are closed at once.
Idle or half-sent connections therefore hold at most ``workers`` threads, and only for the
timeout.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["HealthServer", "HealthState"]


@dataclass
class HealthState:
    """Written by the service, read by the HTTP threads (simple attribute reads are atomic)."""

    heartbeat_timeout_s: float = 30.0
    heartbeat: float | None = None
    model_ready: bool = False
    assigned: int = 0
    stopping: bool = False
    stuck_partitions: int = 0
    output_ok: bool = True
    started: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    def live(self) -> bool:
        return self.heartbeat is not None and (
            time.monotonic() - self.heartbeat < self.heartbeat_timeout_s
        )

    def ready(self) -> bool:
        return (
            self.model_ready
            and self.assigned > 0
            and not self.stopping
            and self.stuck_partitions == 0
            and self.output_ok
            and self.live()
        )

    def describe(self) -> dict[str, object]:
        age = None if self.heartbeat is None else round(time.monotonic() - self.heartbeat, 3)
        return {
            "live": self.live(),
            "ready": self.ready(),
            "heartbeat_age_s": age,
            "model_ready": self.model_ready,
            "assigned_partitions": self.assigned,
            "stopping": self.stopping,
            "stuck_partitions": self.stuck_partitions,
            "output_ok": self.output_ok,
        }


class HealthServer:
    """Serves the endpoints from a daemon thread and a fixed pool of request threads."""

    def __init__(
        self,
        state: HealthState,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        workers: int = 4,
        backlog: int = 32,
        request_timeout_s: float = 5.0,
    ) -> None:
        handler = _make_handler(state, registry, request_timeout_s)
        self._server = _PooledHTTPServer((host, port), handler, workers, backlog)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _PooledHTTPServer(HTTPServer):
    """An HTTPServer whose requests run on a bounded pool, with bounded waiting connections."""

    request_queue_size = 128  # listen backlog: accepted quickly, then served or refused

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        workers: int,
        backlog: int,
    ) -> None:
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health-req")
        self._slots = threading.BoundedSemaphore(workers + backlog)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # too many connections: refuse at once
            self.shutdown_request(request)
            return
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # pool shut down
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that disconnects or stalls is not an error worth a traceback."""

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _make_handler(
    state: HealthState, registry: CollectorRegistry, request_timeout_s: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout_s  # socket timeout: a stalled client is dropped

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok = state.live() if path == "/healthz" else state.ready()
                body = json.dumps(state.describe()).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Silence per-request access logs."""

    return Handler
