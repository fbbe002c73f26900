"""Fixtures of the interop tests: the Java helper, the 1.x Python SDK, and one live service.

A missing JDK, Maven or pip is a test failure that says what to install, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from interop_support import ImageServer, JavaHelper, Live, SetupError, build_java_helper
from interop_support import install_sdk1 as _install_sdk1
from kafka_support import create_topics, unique

from consumer import Service, ServiceSettings
from consumer.logs import configure_logging
from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import ModelConfig, build_model


@pytest.fixture(scope="session", autouse=True)
def _logs() -> None:
    configure_logging("warning", "console")


@pytest.fixture(scope="session")
def java() -> JavaHelper:
    try:
        return build_java_helper()
    except SetupError as exc:
        pytest.fail(f"the Java interop helper could not be built: {exc}")


@pytest.fixture(scope="session")
def sdk1() -> Path:
    """A directory holding cloudevents 1.x (put it first on PYTHONPATH)."""
    try:
        return _install_sdk1()
    except SetupError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init global-only checkpoint: the interop tests judge formats, not images."""
    torch.manual_seed(0)
    config = ModelConfig(arch="global_only", backbone="mobilenet_v2", patch_strategy="none")
    model = build_model(config, backbone_weights=None)
    path = tmp_path_factory.mktemp("ckpt") / "interop.safetensors"
    save_checkpoint(path, model, CheckpointMetadata(config=config, name="interop", version="1"))
    return path


@pytest.fixture(scope="session")
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def live(kafka_bootstrap: str, checkpoint: Path, image_server: ImageServer) -> Iterator[Live]:
    """The service running on its own topics for the whole session (at-least-once mode)."""
    names = {"input": unique("io-images"), "verdicts": unique("io-verdicts")}
    names["dlq"] = names["verdicts"] + ".dlq"
    create_topics(kafka_bootstrap, {names["input"]: 2, names["verdicts"]: 1, names["dlq"]: 1})
    settings = ServiceSettings(
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": kafka_bootstrap,
            "group_id": unique("io-group"),
            "input_topics": [names["input"]],
            "verdict_topic": names["verdicts"],
            "dead_letter_topic": names["dlq"],
            "commit_interval_s": 0.2,
            "statistics_interval_ms": 0,
        },
        model={  # type: ignore[arg-type]
            "checkpoint": checkpoint,
            "device": "cpu",
            "precision": "fp32",
            "warmup": False,
            "max_batch_size": 4,
        },
        batching={"max_wait_ms": 20},  # type: ignore[arg-type]
        http={"enabled": False},  # type: ignore[arg-type]
        fetch={  # type: ignore[arg-type]
            "allow_cidrs": ["127.0.0.1/32"],
            "object_base_url": image_server.base_url,
            "timeout_s": 5.0,
            "retries": 0,
        },
        shutdown={"grace_s": 10},  # type: ignore[arg-type]
    )
    service = Service(settings)
    thread = service.start()
    live = Live(kafka_bootstrap, names["input"], names["verdicts"], names["dlq"])
    try:
        assert service.wait_ready(90), service.error
        yield live
    finally:
        live.close()
        service.stop()
        thread.join(30)
