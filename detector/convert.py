"""Import a state dict saved by the authors' reference code into our GLFF layout.

Name mapping (after stripping any number of ``module.`` prefixes left by ``DataParallel``):

====================================================  =========================================
authors' name                                         ours
====================================================  =========================================
``resnet.<rest>`` (torchvision ResNet-50)             ``backbone.features.<rest>``
``resnet.fc.*`` (the ImageNet classifier, unused)     dropped
``fc1.weight`` / ``fc1.bias`` (Linear 2048 -> 128)    ``embed.weight`` / ``embed.bias``
``<any>.layers.<i>.self_attn.in_proj_weight`` etc.    ``fusion.layers.<i>.self_attn...``
(``nn.TransformerEncoderLayer`` names: ``self_attn``,
``linear1``, ``linear2``, ``norm1``, ``norm2``)
``fc.weight`` / ``fc.bias`` (Linear 128 -> 1)          ``head.weight`` / ``head.bias``
====================================================  =========================================

Extra ``renames`` (``{"old.prefix.": "new.prefix."}``) are applied first, for layouts that
differ. Unknown names are an error, so nothing is silently left at random initialisation.
The source file is read with ``torch.load(weights_only=True)``: tensors and plain containers
only, no arbitrary objects. Use it on files you trust; the output is a safetensors checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from detector.checkpoint import CheckpointMetadata, file_sha256, save_checkpoint
from detector.errors import CheckpointError
from detector.model import ModelConfig, build_model

__all__ = ["convert_authors_state_dict", "convert_file", "load_trusted_state_dict"]

_LAYER = re.compile(
    r"^(?:.*\.)?layers\.(\d+)\.("
    r"self_attn\.in_proj_weight|self_attn\.in_proj_bias|self_attn\.out_proj\.weight|"
    r"self_attn\.out_proj\.bias|linear1\.weight|linear1\.bias|linear2\.weight|linear2\.bias|"
    r"norm1\.weight|norm1\.bias|norm2\.weight|norm2\.bias)$"
)


def _rename(key: str) -> str | None:
    """Our name for one of the authors' keys; ``None`` to drop it; raises for unknown keys."""
    if key.startswith("resnet.fc."):
        return None
    if key.startswith("resnet."):
        return "backbone.features." + key[len("resnet.") :]
    for old, new in (("fc1.", "embed."), ("fc.", "head.")):
        if key.startswith(old):
            return new + key[len(old) :]
    match = _LAYER.match(key)
    if match:
        return f"fusion.layers.{match.group(1)}.{match.group(2)}"
    raise KeyError(key)


def convert_authors_state_dict(
    state: Mapping[str, torch.Tensor], renames: Mapping[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Rename an authors' state dict to ours (see the module docstring for the mapping)."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        name = key
        while name.startswith("module."):
            name = name[len("module.") :]
        for old, new in (renames or {}).items():
            if name.startswith(old):
                name = new + name[len(old) :]
                break
        try:
            target = _rename(name)
        except KeyError:
            unknown.append(key)
            continue
        if target is not None:
            if target in out:
                raise CheckpointError(f"two source tensors map to {target}")
            out[target] = value
    if unknown:
        raise CheckpointError(f"unknown parameter names (use renames): {unknown[:10]}")
    return out


def load_trusted_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``torch.save`` file with ``weights_only=True``; unwraps ``{"model": ...}`` dicts."""
    try:
        obj: Any = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises many types
        raise CheckpointError(f"cannot read {path} with weights_only=True: {exc}") from exc
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a flat state dict of tensors")
    return obj


def convert_file(
    src: str | Path,
    dst: str | Path,
    config: ModelConfig | None = None,
    metadata: CheckpointMetadata | None = None,
    renames: Mapping[str, str] | None = None,
) -> str:
    """Convert the authors' checkpoint ``src`` into our safetensors checkpoint ``dst``.

    Returns the sha256 of ``dst``. Raises :class:`CheckpointError` when names or shapes do not
    fit the model described by ``config`` (default: ResNet-50, PSM, shared backbone).
    """
    config = config or ModelConfig()
    state = convert_authors_state_dict(load_trusted_state_dict(src), renames)
    model = build_model(config)
    own = model.state_dict()
    # BatchNorm counters are bookkeeping: fill them in when the source has none
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"converted names do not fit {config.backbone}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shapes {shapes[:5]}"
        )
    model.load_state_dict(state, strict=True)
    meta = metadata or CheckpointMetadata(name="glff-authors", version="converted")
    training = {"converted_from": Path(src).name, "source_sha256": file_sha256(src)}
    meta = replace(meta, training={**training, **meta.training})
    return save_checkpoint(dst, model, meta)
