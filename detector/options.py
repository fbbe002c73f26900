"""How a :class:`~detector.Detector` runs: every engine knob and its one default.

The service's ``model`` settings section is this class (plus what only the service needs), so a
default declared here is the default everywhere: the Python API, ``python -m detector predict``
and ``python -m consumer run``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from detector.decode import ImageLimits
from detector.errors import DetectorError

__all__ = [
    "DEVICE_NAMES",
    "ENGINE_RUNTIMES",
    "PRECISION_CHOICES",
    "RUNTIME_CHOICES",
    "EngineOptions",
    "Precision",
    "Runtime",
    "with_knobs",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
"""``auto``: bf16 (else fp16) on CUDA, fp32 on the CPU."""
Runtime = Literal["auto", "torch", "onnxruntime", "eager"]
"""``auto``: ONNX Runtime on a CPU in fp32 when installed (the ``onnx`` extra), else ``torch``
(batch norm folded); ``eager``: the model as trained (see :mod:`detector.fuse`)."""
PRECISION_CHOICES: tuple[str, ...] = get_args(Precision)
RUNTIME_CHOICES: tuple[str, ...] = get_args(Runtime)
ENGINE_RUNTIMES = (*RUNTIME_CHOICES, "reference")
"""What the engine accepts: the choices and ``reference`` (unoptimised crops, parity tests)."""
DEVICE_NAMES = re.compile(r"auto|cpu|cuda(:\d+)?")
"""Device names: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Device, precision, runtime, batching and input limits of a detector.

    Raises ``ValueError`` on a name or value the engine cannot use (checked again, against the
    machine, when the detector is built).
    """

    device: str = "auto"
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``."""
    precision: Precision = "auto"
    runtime: Runtime = "auto"
    max_batch_size: int = 16
    """Most images in one forward pass; the service's micro-batches hold as many."""
    max_padded_pixels: int = 64_000_000
    """A forward pass closes earlier when its padded batch would exceed this many pixels."""
    limits: ImageLimits = field(default_factory=ImageLimits)
    """Limits of the images decoded for the model."""
    checkpoint_sha256: str | None = None
    """Expected sha256 of the checkpoint file; another file is refused (None: not checked)."""
    deterministic: bool = False
    """Reproducible kernels and patch-sampling RNG (slower on CUDA)."""
    channels_last: bool | None = None
    """Channels-last memory format (None: on CUDA only)."""

    def __post_init__(self) -> None:
        if not DEVICE_NAMES.fullmatch(self.device):
            raise ValueError(f"device {self.device!r}: expected auto, cpu, cuda or cuda:N")
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(f"precision {self.precision!r} not in {PRECISION_CHOICES}")
        if self.runtime not in ENGINE_RUNTIMES:
            raise ValueError(f"runtime {self.runtime!r} not in {RUNTIME_CHOICES}")
        if self.max_batch_size < 1 or self.max_padded_pixels < 1:
            raise ValueError("max_batch_size and max_padded_pixels must be at least 1")
        sha = self.checkpoint_sha256
        if sha is not None and not _SHA256.fullmatch(sha):
            raise ValueError(f"checkpoint_sha256 {sha!r} is not 64 hex digits")


def with_knobs(options: EngineOptions | None, knobs: Mapping[str, Any]) -> EngineOptions:
    """``options`` (None: the defaults) with the fields named in ``knobs`` replaced.

    Raises:
        DetectorError: a knob that is not a field, or a value the engine cannot use.
    """
    try:
        return dataclasses.replace(options or EngineOptions(), **knobs)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"engine options: {exc}") from exc
