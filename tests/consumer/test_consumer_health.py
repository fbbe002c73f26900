"""Health endpoints and the librdkafka statistics -> lag gauge."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from consumer_support import http_get

from consumer.serving.health import HealthServer, HealthState
from consumer.serving.metrics import Metrics


@pytest.fixture
def served() -> Iterator[tuple[HealthState, Metrics, int]]:
    state, metrics = HealthState(heartbeat_timeout_s=0.3), Metrics()
    server = HealthServer(state, metrics.registry, "127.0.0.1", 0)
    server.start()
    yield state, metrics, server.port
    server.stop()


def test_liveness_follows_the_heartbeat_and_readiness_needs_model_and_partitions(
    served: tuple[HealthState, Metrics, int],
) -> None:
    state, _metrics, port = served
    assert http_get(port, "/healthz")[0] == 503  # never beaten
    state.beat()
    assert http_get(port, "/healthz")[0] == 200
    assert http_get(port, "/readyz")[0] == 503
    state.model_ready = True
    assert http_get(port, "/readyz")[0] == 503  # no partitions yet
    state.assigned = 3
    status, body = http_get(port, "/readyz")
    assert status == 200 and json.loads(body)["assigned_partitions"] == 3
    time.sleep(0.35)  # the loop is stuck: not live, hence not ready
    assert http_get(port, "/healthz")[0] == 503 and http_get(port, "/readyz")[0] == 503
    state.beat()
    state.stopping = True
    assert http_get(port, "/healthz")[0] == 200 and http_get(port, "/readyz")[0] == 503
    assert http_get(port, "/nope")[0] == 404


def test_statistics_become_lag_gauges(served: tuple[HealthState, Metrics, int]) -> None:
    _state, metrics, port = served
    stats = {
        "topics": {
            "images": {
                "partitions": {
                    "0": {"fetch_state": "active", "consumer_lag": 7},
                    "1": {"fetch_state": "active", "consumer_lag": 5},
                    "2": {"fetch_state": "none", "consumer_lag": 99},  # not ours
                    "-1": {"fetch_state": "none", "consumer_lag": -1},
                }
            }
        }
    }
    metrics.on_stats(json.dumps(stats))
    metrics.set_model_info({"name": "glff", "threshold": 0.5})
    status, body = http_get(port, "/metrics")
    assert status == 200
    assert 'synthscan_consumer_lag{partition="0",topic="images"} 7.0' in body
    assert "synthscan_consumer_lag_total 12.0" in body
    assert 'partition="2"' not in body
    assert 'synthscan_model_info{name="glff",threshold="0.5"} 1.0' in body


def test_idle_half_sent_requests_hold_a_bounded_number_of_threads() -> None:
    import socket
    import threading

    state, metrics = HealthState(), Metrics()
    state.beat()
    server = HealthServer(
        state, metrics.registry, "127.0.0.1", 0, workers=4, backlog=8, request_timeout_s=0.5
    )
    server.start()
    before = threading.active_count()
    idle = []
    try:
        for _ in range(300):  # slowloris: a request line, never the end of the headers
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            idle.append(sock)
        time.sleep(0.3)
        assert threading.active_count() <= before + 4  # was one thread per connection
        deadline = time.monotonic() + 30
        status = 0
        while status != 200 and time.monotonic() < deadline:  # stalled ones time out
            try:
                status = http_get(server.port, "/healthz")[0]
            except OSError:
                time.sleep(0.1)
        assert status == 200
        assert threading.active_count() <= before + 4
    finally:
        for sock in idle:
            sock.close()
        server.stop()
