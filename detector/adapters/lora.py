"""Low-rank adaptation (LoRA) as a weight parametrization: ``W = W0 + (alpha / r) * B @ A``.

Written here rather than taken from ``peft`` because the fusion module's attention keeps its
query/key/value projection as one packed parameter (``self_attn.in_proj_weight``), the trunk's
convolutions include depthwise ones, and inference wants the deltas MERGED into per-adapter
copies of a small tail (see :mod:`detector.adapters.tail`); a parametrization covers every
weight tensor the same way (``A: [r, fan_in]``, ``B: [out, r]``, B starts at zero, A Kaiming
uniform), with ``torch.nn.utils.parametrize`` doing the bookkeeping.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["LoRADelta", "add_lora", "lora_targets", "lora_tensors"]


class LoRADelta(nn.Module):
    """Parametrization adding ``scale * (B @ A)`` to a weight of shape ``[out, ...]``."""

    def __init__(self, shape: torch.Size, rank: int, alpha: float) -> None:
        super().__init__()
        out, fan_in = shape[0], math.prod(shape[1:])
        self.lora_A = nn.Parameter(torch.empty(rank, fan_in))
        self.lora_B = nn.Parameter(torch.zeros(out, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / rank

    def delta(self) -> torch.Tensor:
        return self.lora_B @ self.lora_A * self.scale

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.delta().view_as(weight).to(weight.dtype)


def lora_targets(module: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(path, owner, tensor name)`` of every adaptable weight: convolutions, linear layers
    and packed attention projections (biases, norms and the 1-logit head are excluded)."""
    found: list[tuple[str, nn.Module, str]] = []
    for path, owner in module.named_modules():
        if path == "head" or path.startswith("head."):
            continue
        if isinstance(owner, nn.Conv2d | nn.Linear):
            found.append((path, owner, "weight"))
        elif isinstance(owner, nn.MultiheadAttention) and owner.in_proj_weight is not None:
            found.append((path, owner, "in_proj_weight"))
    return found


def add_lora(module: nn.Module, rank: int, alpha: float) -> list[nn.Parameter]:
    """Parametrize every target of ``module`` with a fresh :class:`LoRADelta`; returns the new
    trainable parameters (the caller freezes the rest)."""
    params: list[nn.Parameter] = []
    for _, owner, name in lora_targets(module):
        delta = LoRADelta(getattr(owner, name).shape, rank, alpha)
        parametrize.register_parametrization(owner, name, delta)
        params += [delta.lora_A, delta.lora_B]
    return params


def _deltas(module: nn.Module) -> list[tuple[str, nn.Module, str, LoRADelta]]:
    found = []
    for path, owner in module.named_modules():
        if not parametrize.is_parametrized(owner):
            continue
        for name, plist in owner.parametrizations.items():
            for p in plist:
                if isinstance(p, LoRADelta):
                    found.append((path, owner, name, p))
    return found


def lora_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """``{"<path>.<tensor>.lora_A": A, ... .lora_B: B}`` of a LoRA-parametrized module."""
    out: dict[str, torch.Tensor] = {}
    for path, _, name, delta in _deltas(module):
        key = f"{path}.{name}" if path else name
        out[f"{key}.lora_A"] = delta.lora_A.detach().clone()
        out[f"{key}.lora_B"] = delta.lora_B.detach().clone()
    return out
