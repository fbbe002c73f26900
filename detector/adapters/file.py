"""Adapter files: safetensors tensors + JSON metadata bound to one base checkpoint.

The header's ``__metadata__["synthscan"]`` is a JSON object::

    {"format": "synthscan-adapter", "format_version": 1, "generator": "sdxl",
     "method": "lora", "rank": 8, "alpha": 16.0, "split": 18,
     "base": {"sha256": ..., "name": ..., "version": ...},
     "shots": 20, "data": {...}, "seed": 0, "threshold": 0.5,
     "training": {AdaptConfig}, "created_at": "...Z"}

Tensors (names relative to :class:`~detector.adapters.tail.Tail`): ``lora``:
``<module>.<weight>.lora_A`` / ``.lora_B`` and ``head.weight`` / ``head.bias``; ``head``: the head;
``full``: the whole tail state. Loading never unpickles, refuses an adapter made for another
base checkpoint (sha256), and checks every tensor's name, shape and finiteness.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from detector.adapters.lora import lora_targets
from detector.adapters.tail import Tail, check_adaptable
from detector.checkpoint import METADATA_KEY, file_sha256, read_metadata
from detector.errors import CheckpointError
from detector.files import write_safetensors
from detector.model import GLFF, GlobalOnly

__all__ = ["ADAPTER_FORMAT", "Adapter", "AdapterMetadata", "load_adapter", "save_adapter"]

ADAPTER_FORMAT = "synthscan-adapter"
ADAPTER_FORMAT_VERSION = 1


@dataclass(frozen=True)
class AdapterMetadata:
    """What an adapter is, what it was trained on and which base it belongs to."""

    generator: str
    method: str
    split: int
    base_sha256: str
    base_name: str = ""
    base_version: str = ""
    rank: int = 0
    alpha: float = 0.0
    shots: int = 0
    seed: int = 0
    threshold: float = 0.5
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ADAPTER_FORMAT,
            "format_version": ADAPTER_FORMAT_VERSION,
            "generator": self.generator,
            "method": self.method,
            "rank": self.rank,
            "alpha": self.alpha,
            "split": self.split,
            "base": {
                "sha256": self.base_sha256,
                "name": self.base_name,
                "version": self.base_version,
            },
            "shots": self.shots,
            "seed": self.seed,
            "threshold": self.threshold,
            "data": self.data,
            "training": self.training,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdapterMetadata:
        if data.get("format") != ADAPTER_FORMAT:
            raise CheckpointError(f"not a {ADAPTER_FORMAT} file (format={data.get('format')!r})")
        if data.get("format_version") != ADAPTER_FORMAT_VERSION:
            raise CheckpointError(
                f"unsupported adapter format_version {data.get('format_version')!r}"
            )
        try:
            base = dict(data["base"])
            meta = cls(
                generator=str(data["generator"]),
                method=str(data["method"]),
                split=int(data["split"]),
                base_sha256=str(base["sha256"]).lower(),
                base_name=str(base.get("name", "")),
                base_version=str(base.get("version", "")),
                rank=int(data.get("rank", 0)),
                alpha=float(data.get("alpha", 0.0)),
                shots=int(data.get("shots", 0)),
                seed=int(data.get("seed", 0)),
                threshold=float(data["threshold"]),
                data=dict(data.get("data") or {}),
                training=dict(data.get("training") or {}),
                created_at=str(data.get("created_at", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid adapter metadata: {exc}") from exc
        if meta.method not in ("head", "lora", "full"):
            raise CheckpointError(f"unknown adapter method {meta.method!r}")
        if not meta.generator.strip():
            raise CheckpointError("adapter has no generator name")
        if not 0.0 <= meta.threshold <= 1.0:
            raise CheckpointError(f"adapter threshold {meta.threshold} outside [0, 1]")
        if meta.method == "lora" and (meta.rank < 1 or meta.alpha <= 0):
            raise CheckpointError("lora adapter needs rank >= 1 and alpha > 0")
        return meta


@dataclass(frozen=True)
class Adapter:
    """A loaded adapter: its merged tail (ready for inference) and identity."""

    name: str
    tail: Tail
    threshold: float
    sha256: str
    metadata: AdapterMetadata


def save_adapter(path: str | Path, tensors: dict[str, torch.Tensor], meta: AdapterMetadata) -> str:
    """Write an adapter file; returns its sha256."""
    if not meta.created_at:
        meta = AdapterMetadata(
            **{**meta.__dict__, "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        )
    path = Path(path)
    payload = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    write_safetensors(path, payload, {METADATA_KEY: json.dumps(meta.to_json(), sort_keys=True)})
    return file_sha256(path)


def _apply(tail: Tail, tensors: dict[str, torch.Tensor], meta: AdapterMetadata) -> None:
    own = tail.state_dict()
    if meta.method == "full":
        missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        shapes = [k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape]
        if missing or unexpected or shapes:
            raise CheckpointError(
                f"full adapter does not match the base tail: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}, wrong shapes {shapes[:3]}"
            )
        tail.load_state_dict(tensors, strict=True)
        return
    head = {k: v for k, v in tensors.items() if k.startswith("head.")}
    if set(head) != {"head.weight", "head.bias"}:
        raise CheckpointError("adapter lacks head.weight/head.bias")
    for key, value in head.items():
        if own[key].shape != value.shape:
            raise CheckpointError(f"{key}: shape {tuple(value.shape)} != {tuple(own[key].shape)}")
    rest = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    if meta.method == "head":
        if rest:
            raise CheckpointError(f"head adapter has unexpected tensors {sorted(rest)[:3]}")
    else:
        targets = {
            (f"{path}.{name}" if path else name): (owner, name)
            for path, owner, name in lora_targets(tail)
        }
        wanted = {f"{t}.lora_{s}" for t in targets for s in "AB"}
        if set(rest) != wanted:
            raise CheckpointError(
                "lora tensors do not match the base tail: "
                f"missing {sorted(wanted - set(rest))[:3]}, "
                f"unexpected {sorted(set(rest) - wanted)[:3]}"
            )
        scale = meta.alpha / meta.rank
        with torch.no_grad():
            for target, (owner, name) in targets.items():
                weight = getattr(owner, name)
                a, b = rest[f"{target}.lora_A"], rest[f"{target}.lora_B"]
                fan_in = math.prod(weight.shape[1:])
                if a.shape != (meta.rank, fan_in) or b.shape != (weight.shape[0], meta.rank):
                    raise CheckpointError(
                        f"{target}: lora shapes {tuple(a.shape)}, {tuple(b.shape)}"
                    )
                weight.add_((b.float() @ a.float() * scale).view_as(weight).to(weight.dtype))
    tail.head.load_state_dict({k[5:]: v for k, v in head.items()})


def load_adapter(path: str | Path, base: GLFF | GlobalOnly, base_sha256: str) -> Adapter:
    """Load an adapter onto (a copy of) ``base``'s tail; never unpickles.

    Raises:
        CheckpointError: pickle, malformed file or metadata, another base (sha256), or tensors
            that do not fit the base's tail.
    """
    path = Path(path)
    meta = AdapterMetadata.from_json(read_metadata(path))
    if meta.base_sha256 != base_sha256.lower():
        raise CheckpointError(
            f"{path.name} was made for base {meta.base_sha256[:12]}..., not for the loaded base "
            f"{base_sha256[:12]}..."
        )
    model = check_adaptable(base)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read tensors of {path}: {exc}") from exc
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path.name}: non-finite values in {bad[:3]}")
    try:
        tail = Tail.of(model, meta.split, copy_weights=True)
    except ValueError as exc:
        raise CheckpointError(f"{path.name}: {exc}") from exc
    device = next(model.parameters()).device
    _apply(tail.cpu(), tensors, meta)
    tail = tail.to(device).eval()
    tail.requires_grad_(False)
    return Adapter(meta.generator, tail, meta.threshold, file_sha256(path), meta)
