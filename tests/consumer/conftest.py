"""Fixtures of the consumer tests: a tiny checkpoint, an image HTTP server, service factories."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from consumer_support import ImageServer, Topics, make_checkpoint

from consumer import Service, ServiceSettings
from consumer.logs import configure_logging
from detector import Detector


@pytest.fixture(scope="session", autouse=True)
def _logs() -> None:
    configure_logging("info", "console")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init GLFF / mobilenet_v2 checkpoint."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "glff-mnv2.safetensors")


@pytest.fixture(scope="session")
def detector(checkpoint: Path) -> Detector:
    det = Detector.from_checkpoint(checkpoint, device="cpu", precision="fp32")
    det.warmup()
    return det


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture
def topics_factory(kafka_bootstrap: str) -> Callable[[int], Topics]:
    return lambda partitions: Topics(kafka_bootstrap, partitions)


@pytest.fixture
def run_service() -> Iterator[Callable[..., Service]]:
    """Start services in threads; every one is stopped (drained) at teardown."""
    started: list[tuple[Service, threading.Thread]] = []

    def start(settings: ServiceSettings, detector: Any = None, ready: bool = True) -> Service:
        service = Service(settings, detector=detector)
        thread = service.start()
        started.append((service, thread))
        if ready:
            assert service.wait_ready(60), f"service not ready: {service.error!r}"
        return service

    yield start
    for service, _thread in started:
        service.stop()
    for _service, thread in started:
        thread.join(30)
        assert not thread.is_alive(), "service did not stop in time"
