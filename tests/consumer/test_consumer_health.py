"""Health endpoints and the librdkafka statistics -> lag gauge."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from consumer_support import http_get

from consumer.health import HealthServer, HealthState
from consumer.metrics import Metrics


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
