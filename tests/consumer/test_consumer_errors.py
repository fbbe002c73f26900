"""The one failure path: every exception maps to its dead-letter code in one table, and a
corrupt checkpoint is a configuration error (exit code 2), not a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumer.errors import (
    ChecksumMismatchError,
    ConfigurationError,
    FetchFailedError,
    FetchForbiddenError,
    FetchTimeoutError,
    FetchTooLargeError,
    InferenceFailed,
    OutputRejected,
    UnreadableHeaders,
    VerdictBuildFailed,
    error_code,
    error_message,
)
from consumer.items import Envelope, Failure
from consumer.serving.model_reload import load_detector
from consumer.settings import ModelSettings
from detector import ImageDecodeError, ImageTooLargeError, UnsupportedImageError
from schemas import ErrorCode, EventError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UnreadableHeaders("h"), ErrorCode.SCHEMA_VIOLATION),
        (InferenceFailed("i"), ErrorCode.INFERENCE_FAILED),
        (VerdictBuildFailed("v"), ErrorCode.INTERNAL_ERROR),
        (OutputRejected("o"), ErrorCode.OUTPUT_REJECTED),
        (FetchFailedError("f"), ErrorCode.FETCH_FAILED),
        (FetchForbiddenError("f"), ErrorCode.FETCH_FORBIDDEN),
        (FetchTimeoutError("f"), ErrorCode.FETCH_TIMEOUT),
        (FetchTooLargeError("f"), ErrorCode.FETCH_TOO_LARGE),
        (ChecksumMismatchError("f"), ErrorCode.CHECKSUM_MISMATCH),
        (ImageTooLargeError("x"), ErrorCode.IMAGE_TOO_LARGE),
        (UnsupportedImageError("x"), ErrorCode.UNSUPPORTED_MEDIA),
        (ImageDecodeError("x"), ErrorCode.IMAGE_DECODE_ERROR),
        (EventError(ErrorCode.MISSING_IMAGE, "empty"), ErrorCode.MISSING_IMAGE),
        (KeyError("bug"), ErrorCode.INTERNAL_ERROR),
    ],
)
def test_every_exception_has_its_code(exc: Exception, code: ErrorCode) -> None:
    assert error_code(exc) == code


def test_failure_carries_code_message_and_attempts() -> None:
    env = Envelope("t", 0, 7, None, b"v", (), None, 1)
    error = FetchTimeoutError("slow origin")
    error.attempts = 3
    failure = Failure.of(env, error)
    assert (failure.code, failure.message, failure.attempts) == (
        ErrorCode.FETCH_TIMEOUT,
        "slow origin",
        3,
    )
    assert error_message(EventError(ErrorCode.SCHEMA_VIOLATION, "no id")) == "no id"
    assert Failure.of(env, KeyError("x")).message == "KeyError('x')"


def test_no_step_assigns_a_code_or_reads_attributes_by_name() -> None:
    """Codes are assigned in consumer/errors.py only; no duck-typed ``getattr(exc, ...)``."""
    offenders = []
    for path in (ROOT / "consumer").rglob("*.py"):
        text = path.read_text()
        if path.name != "errors.py" and "ErrorCode." in text:
            offenders.append(f"{path.name}: ErrorCode")
        if "getattr(exc" in text:
            offenders.append(f"{path.name}: getattr(exc")
    assert offenders == []


def test_corrupt_checkpoint_is_a_configuration_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all, nor tensors")
    with pytest.raises(ConfigurationError, match=r"corrupt\.safetensors"):
        load_detector(ModelSettings(checkpoint=corrupt, warmup=False))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer",
            "run",
            "--set",
            f"model.checkpoint={corrupt}",
            "--set",
            "http.enabled=false",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "cannot start" in run.stderr and "corrupt.safetensors" in run.stderr
