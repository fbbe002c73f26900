"""Fixtures of the fetch tests: a local HTTP server and fast, loopback-allowing settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fetch_server import LocalServer, serving

from consumer.settings import FetchSettings


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with serving() as srv:
        yield srv


@pytest.fixture
def settings() -> FetchSettings:
    """Loopback allow-listed, short budgets, near-zero backoff."""
    return FetchSettings.model_validate(
        {
            "timeout_s": 2.0,
            "max_total_s": 5.0,
            "max_bytes": 64 * 1024,
            "max_redirects": 3,
            "retries": 2,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.05,
            "allow_cidrs": ["127.0.0.1/32"],
        }
    )
