"""Base + adapters in one pass, and how their scores combine into one decision.

:func:`forward_with_adapters` runs the model's views, the shared prefix and the base's patch
selection once (the model's own ``forward_trunk``), then the base tail and every adapter's tail
on the same feature maps.

Combination (the overall label): every head ``i`` (the base and each adapter) has a score
``s_i`` and its own threshold ``t_i``. Its logit is shifted so that its threshold lands on the
base's: ``z_i = logit(s_i) - logit(t_i) + logit(t_base)``; the overall score is
``sigmoid(max_i z_i)``. So an image is synthetic iff ANY head is at or over its own threshold
(the base keeps catching what it caught; an adapter adds its generator), the overall score is
the base score when no adapter is loaded, and ``score >= threshold`` still holds for the label.
The attributed generator is the adapter with the largest margin ``z_i`` among those at or over
threshold when it beats the base's margin; otherwise ``None`` (the base's known generators, or
real).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from detector.adapters.file import Adapter
from detector.adapters.tail import Tail
from detector.model import GLFF, GLFFOutput, GlobalOnly

__all__ = ["BASE", "AdapterScore", "Attribution", "combine", "forward_with_adapters"]

BASE = "base"
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class AdapterScore:
    """One head's opinion: ``generator`` is ``"base"`` for the base model."""

    generator: str
    score: float
    threshold: float
    is_synthetic: bool
    adapter_sha256: str = ""


@dataclass(frozen=True, slots=True)
class Attribution:
    """Per-generator scores and the combined decision (see module docstring)."""

    generator: str | None
    score: float
    threshold: float
    is_synthetic: bool
    scores: list[AdapterScore]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def combine(base_score: float, base_threshold: float, heads: Sequence[AdapterScore]) -> Attribution:
    """Combine the base score with adapter scores (the OR rule as one calibrated score)."""
    base = AdapterScore(BASE, base_score, base_threshold, base_score >= base_threshold)
    offset = _logit(base_threshold)
    margins = [(_logit(h.score) - _logit(h.threshold), h) for h in heads]
    best_margin = max([m for m, _ in margins], default=-math.inf)
    base_margin = _logit(base_score) - offset
    if best_margin > base_margin:
        score = 1.0 / (1.0 + math.exp(-(best_margin + offset)))
        # keep the label exactly the OR of the heads despite rounding at the threshold
        if any(h.is_synthetic for h in heads):
            score = max(score, base_threshold)
        else:
            score = min(score, math.nextafter(base_threshold, 0.0))
    else:
        score = base_score
    is_synthetic = score >= base_threshold
    winner = None
    if margins and best_margin >= 0 and best_margin > base_margin:
        winner = max(margins, key=lambda mh: mh[0])[1].generator
    return Attribution(winner, score, base_threshold, is_synthetic, [base, *heads])


@torch.no_grad()
def forward_with_adapters(
    model: GLFF | GlobalOnly,
    split: int,
    adapters: Sequence[Adapter],
    pixels: torch.Tensor,
    sizes: torch.Tensor,
) -> tuple[GLFFOutput, torch.Tensor]:
    """Base outputs (as ``model(pixels, sizes)``) and adapter logits ``[B, A]``."""
    maps = model.forward_trunk(pixels, sizes, split=split)
    base_logits, attention = Tail.of(model, split, copy_weights=False)(
        maps.global_map, maps.local_maps
    )
    extra = [a.tail(maps.global_map, maps.local_maps)[0] for a in adapters]
    adapter_logits = (
        torch.stack(extra, dim=1) if extra else base_logits.new_zeros(len(base_logits), 0)
    )
    sel = maps.selection
    return GLFFOutput(
        base_logits, sel.boxes, sel.windows, sel.activations, attention
    ), adapter_logits
