"""Safe checkpoints: safetensors weights + JSON metadata in the safetensors header.

The header's ``__metadata__`` holds one key, ``"synthscan"``, whose value is a JSON object::

    {"format": "synthscan-detector", "format_version": 1,
     "name": ..., "version": ..., "created_at": "2026-...Z",
     "architecture": "glff", "backbone": "resnet50", "patch_strategy": "psm",
     "threshold": 0.5, "decision_band": {"real_below": ..., "synthetic_from": ..., ...},
     "input_size": 224, "normalization": {"mean": [...], "std": [...]},
     "preprocessing_version": "1", "model": {ModelConfig fields},
     "training_data": {...summary...}, "training": {...free config...},
     "parameters": 24069185, "torch_version": ..., "torchvision_version": ...}

Loading never unpickles: only the safetensors format is read, and a pickle or ``torch.save``
zip is refused with :class:`CheckpointError` (use ``python -m detector convert`` for trusted
files). ``decision_band`` (optional; written by ``python -m detector calibrate`` and
``detector.training.calibration.decision_band(...).to_dict()``) holds the moderator's
uncertain band chosen on the validation data with the error rates it was chosen at; files
without it get the fallback of ``provenance.decision``. A checkpoint whose top-level fields
disagree with its ``model`` config, or whose tensors do not match the model built from that
config (names or shapes), is refused.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision
from safetensors.torch import load_file
from torch import nn

from detector.errors import CheckpointError
from detector.files import write_safetensors
from detector.model import (
    ARCH_ALIASES,
    GLFF,
    GlobalOnly,
    ModelConfig,
    build_model,
    count_parameters,
)

__all__ = [
    "DEFAULT_CHECKPOINT",
    "FORMAT",
    "FORMAT_VERSION",
    "PREPROCESSING_VERSION",
    "CheckpointMetadata",
    "file_sha256",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
]

FORMAT = "synthscan-detector"
DEFAULT_CHECKPOINT = (
    Path(__file__).resolve().parent / "checkpoints" / "glff-forensic-mobilenet_v2.safetensors"
)
"""The shipped checkpoint, the one the service serves unless told otherwise."""
FORMAT_VERSION = 1
PREPROCESSING_VERSION = (
    "1"  # decode -> RGB uint8, central square -> 224 by roi_align, ImageNet norm
)
METADATA_KEY = "synthscan"
MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class CheckpointMetadata:
    """Metadata stored with a checkpoint (the model config comes from the model itself)."""

    config: ModelConfig = field(default_factory=ModelConfig)
    name: str = "glff"
    version: str = "0.0.0"
    threshold: float = 0.5
    training_data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    preprocessing_version: str = PREPROCESSING_VERSION
    decision_band: dict[str, Any] | None = None
    """``real_below``/``synthetic_from`` edges plus the rates they were chosen at (or None)."""

    def band_edges(self) -> tuple[float, float] | None:
        """``(real_below, synthetic_from)`` stored with the checkpoint, None when absent."""
        band = self.decision_band
        if band is None:
            return None
        return float(band["real_below"]), float(band["synthetic_from"])

    def to_json(self) -> dict[str, Any]:
        """The JSON object written into the safetensors header."""
        cfg = self.config
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "architecture": cfg.arch,
            "backbone": cfg.backbone,
            "patch_strategy": cfg.patch_strategy,
            "threshold": self.threshold,
            **({} if self.decision_band is None else {"decision_band": self.decision_band}),
            "input_size": cfg.input_size,
            "normalization": {"mean": list(cfg.mean), "std": list(cfg.std)},
            "preprocessing_version": self.preprocessing_version,
            "model": cfg.to_dict(),
            "training_data": self.training_data,
            "training": self.training,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckpointMetadata:
        """Parse and cross-check header metadata; raises :class:`CheckpointError`."""
        if data.get("format") != FORMAT:
            raise CheckpointError(f"not a {FORMAT} checkpoint (format={data.get('format')!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"unsupported format_version {data.get('format_version')!r}")
        try:
            config = ModelConfig.from_dict(dict(data["model"]))
            threshold = float(data["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid checkpoint metadata: {exc}") from exc
        expected = {
            "architecture": config.arch,
            "backbone": config.backbone,
            "patch_strategy": config.patch_strategy,
            "input_size": config.input_size,
            "normalization": {"mean": list(config.mean), "std": list(config.std)},
        }
        stored = dict(data)
        if stored.get("architecture") in ARCH_ALIASES:  # an old name of the same model
            stored["architecture"] = ARCH_ALIASES[stored["architecture"]]
        for key, value in expected.items():
            if stored.get(key) != value:
                raise CheckpointError(
                    f"metadata mismatch: {key}={data.get(key)!r}, model config says {value!r}"
                )
        if not 0.0 <= threshold <= 1.0:
            raise CheckpointError(f"threshold {threshold} outside [0, 1]")
        if data.get("preprocessing_version") != PREPROCESSING_VERSION:
            raise CheckpointError(
                f"preprocessing_version {data.get('preprocessing_version')!r} is not "
                f"{PREPROCESSING_VERSION!r}"
            )
        return cls(
            decision_band=_decision_band(data.get("decision_band")),
            config=config,
            name=str(data.get("name", "")),
            version=str(data.get("version", "")),
            threshold=threshold,
            training_data=dict(data.get("training_data") or {}),
            training=dict(data.get("training") or {}),
            created_at=str(data.get("created_at", "")),
            preprocessing_version=str(data["preprocessing_version"]),
        )


def _decision_band(raw: Any) -> dict[str, Any] | None:
    """The stored band, checked: ``0 < real_below < synthetic_from < 1``."""
    if raw is None:
        return None
    try:
        low, high = float(raw["real_below"]), float(raw["synthetic_from"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid decision_band {raw!r}: {exc}") from exc
    if not 0.0 < low < high < 1.0:
        raise CheckpointError(
            f"decision_band needs 0 < real_below < synthetic_from < 1, got {low}, {high}"
        )
    return dict(raw)


def save_checkpoint(
    path: str | Path, model: nn.Module, metadata: CheckpointMetadata | None = None
) -> str:
    """Write ``model`` and ``metadata`` as safetensors; returns the file's sha256.

    ``metadata.config`` is replaced by ``model.config`` (the model is the source of truth) and
    ``created_at`` is set when empty.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise CheckpointError("save_checkpoint needs a GLFF or GlobalOnly model")
    meta = metadata or CheckpointMetadata()
    meta = replace(meta, config=config)
    if not meta.created_at:
        meta = replace(meta, created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    header = meta.to_json()
    header["parameters"] = count_parameters(model)
    header["torch_version"] = torch.__version__
    header["torchvision_version"] = torchvision.__version__
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    write_safetensors(path, tensors, {METADATA_KEY: json.dumps(header, sort_keys=True)})
    return file_sha256(path)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".bin")


def _pickle_error(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is a pickle/torch.save file; it is never loaded here. Convert a trusted "
        "file with `python -m detector convert`."
    )


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header of ``path``; a pickle or zip is refused, never parsed.

    A file is safetensors when its 8-byte little-endian header length fits the file and the
    header parses as a JSON object. Only otherwise are the pickle (``0x80``) and zip (``PK``)
    magics checked: the first header-length byte is arbitrary (it may be ``0x80`` or spell
    ``PK``), so the magic alone would refuse valid checkpoints.
    """
    with open(path, "rb") as handle:
        head = handle.read(8)
        size = handle.seek(0, 2)
        header: Any = None
        if len(head) == 8:
            (length,) = struct.unpack("<Q", head)
            if 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
                handle.seek(8)
                raw = handle.read(length)
                if raw[:1] == b"{":
                    try:
                        header = json.loads(raw)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        header = None
    if isinstance(header, dict):
        return header
    if head[:2] == b"PK" or head[:1] == b"\x80" or path.suffix in PICKLE_SUFFIXES:
        raise _pickle_error(path)
    raise CheckpointError(f"{path} is not a safetensors file (no valid header)")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read the raw JSON metadata from a safetensors header without loading tensors."""
    path = Path(path)
    try:
        header = _read_header(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    meta = header.get("__metadata__")
    raw = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(raw, str):
        raise CheckpointError(f"{path} has no {METADATA_KEY!r} metadata")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: metadata is not a JSON object")
    return data


def load_checkpoint(
    path: str | Path, *, expected: ModelConfig | None = None, map_location: str = "cpu"
) -> tuple[GLFF | GlobalOnly, CheckpointMetadata]:
    """Load a checkpoint into a freshly built model (eval mode).

    Args:
        expected: when given, the checkpoint's model config must equal it.

    Raises:
        CheckpointError: pickled, malformed, metadata mismatch, or tensors that do not match
            the model (missing, unexpected or wrongly shaped).
    """
    path = Path(path)
    metadata = CheckpointMetadata.from_json(read_metadata(path))
    if expected is not None and expected != metadata.config:
        raise CheckpointError(
            f"checkpoint config {metadata.config} does not match the expected {expected}"
        )
    try:
        tensors = load_file(str(path), device=map_location)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read tensors of {path}: {exc}") from exc
    model = build_model(metadata.config)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path} does not match a {metadata.config.arch}/{metadata.config.backbone} model: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {sorted(shapes)[:5]}"
        )
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, metadata
