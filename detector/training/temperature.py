"""Temperature scaling (Guo et al., 2017): one scalar ``T`` that divides the logit, fitted on
VALIDATION data by the mean binary cross-entropy, so that scores read as probabilities.

A head trained long on cached features is over-confident: its scores crowd near 0 and 1 (the
shipped forensic GLFF had a threshold of 0.99976 and showed "score 0.9997, real"). Dividing the
logit by ``T > 1`` keeps every ranking, AUC and decision (threshold and band move with it) and
makes the score mean what it says. For a linear head the division is exact inside the weights:
:func:`scale_linear` divides the head's weight and bias, so checkpoints and engines need no new
field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

__all__ = ["Temperature", "fit_temperature", "scale_linear"]

_GRID = np.exp(np.linspace(np.log(0.05), np.log(100.0), 801))
"""Candidate temperatures, log-spaced (the fit refines around the best of them)."""


@dataclass(frozen=True)
class Temperature:
    """A fitted temperature and the validation loss before and after it."""

    value: float
    nll_before: float
    nll_after: float
    n: int
    data: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values for the checkpoint metadata."""
        return asdict(self)


def _nll(labels: npt.NDArray[np.float64], logits: npt.NDArray[np.float64], t: float) -> float:
    z = logits / t  # log(1 + e^-z) for the fakes, log(1 + e^z) for the reals, overflow-free
    return float(np.mean(np.logaddexp(0.0, np.where(labels > 0, -z, z))))


def fit_temperature(labels: npt.ArrayLike, logits: npt.ArrayLike, data: str = "") -> Temperature:
    """The ``T`` minimising the mean cross-entropy of ``sigmoid(logits / T)`` (1: synthetic).

    Raises:
        ValueError: empty input, one class only, or logits that are not finite.
    """
    y = np.asarray(labels, dtype=np.float64)
    z = np.asarray(logits, dtype=np.float64)
    if y.shape != z.shape or y.size == 0:
        raise ValueError("labels and logits must be non-empty and of one shape")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits must be finite")
    if y.min() == y.max():
        raise ValueError("both classes are needed to fit a temperature")
    losses = [_nll(y, z, t) for t in _GRID]
    best = int(np.argmin(losses))
    low, high = _GRID[max(best - 1, 0)], _GRID[min(best + 1, _GRID.size - 1)]
    for _ in range(60):  # golden-section search inside the bracketing grid cell
        a = high - (high - low) / 1.618033988749895
        b = low + (high - low) / 1.618033988749895
        low, high = (low, b) if _nll(y, z, a) < _nll(y, z, b) else (a, high)
    t = float((low + high) / 2)
    return Temperature(t, _nll(y, z, 1.0), _nll(y, z, t), int(y.size), data)


@torch.no_grad()
def scale_linear(head: nn.Linear, temperature: float) -> None:
    """Divide ``head``'s weight and bias by ``temperature`` (its logit is then ``logit / T``)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    head.weight.div_(temperature)
    if head.bias is not None:
        head.bias.div_(temperature)
