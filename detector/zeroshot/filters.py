"""Constrained prediction-error filters: the residual extractors of the self-description.

A filter predicts each pixel from its neighbours: its centre weight is zero and its
off-centre weights sum to one, so a flat image has a zero residual (``image - filtered``).
The bank has :data:`NUM_FILTERS` filters of :data:`FILTER_SIZE` x :data:`FILTER_SIZE`, each
with its own support (3x3, 5x5, 7x7, full, row, column, diagonals, outer ring): learning
minimises a convex residual energy, so filters on the same support would all converge to
the same predictor; distinct supports keep the bank diverse.

The constraint is enforced by reparametrisation (:meth:`FilterBank.weights`): the free
parameters are masked to the support, then the deficit ``1 - sum`` is shared equally over the
support. Training (:func:`train_filters`) minimises the mean squared residual of real photos'
grayscale crops with Adam; the weights then still satisfy the constraint exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FILTER_NAMES",
    "FILTER_SIZE",
    "NUM_FILTERS",
    "FilterBank",
    "classical_filters",
    "residuals",
    "support_masks",
    "train_filters",
]

FILTER_SIZE = 15
NUM_FILTERS = 8
FILTER_NAMES: tuple[str, ...] = (
    "square3",
    "square5",
    "square7",
    "full15",
    "row15",
    "column15",
    "diagonal15",
    "ring15",
)


def support_masks(size: int = FILTER_SIZE) -> torch.Tensor:
    """``float [8, size, size]`` 0/1 supports of :data:`FILTER_NAMES`, centre always 0."""
    c = size // 2
    yy, xx = torch.meshgrid(torch.arange(size) - c, torch.arange(size) - c, indexing="ij")
    cheb = torch.maximum(yy.abs(), xx.abs())
    masks = torch.stack(
        [
            cheb <= 1,
            cheb <= 2,
            cheb <= 3,
            cheb <= c,
            yy == 0,
            xx == 0,
            yy.abs() == xx.abs(),
            cheb >= 2,
        ]
    ).float()
    masks[:, c, c] = 0.0
    return masks


def classical_filters(size: int = FILTER_SIZE) -> torch.Tensor:
    """``float [8, size, size]`` fixed predictors on :func:`support_masks`' supports.

    3x3: the KB predictor (edge neighbours 1/2, corners -1/4); the others: Gaussian-weighted
    averages of their support (sigma 1 for rows, columns and diagonals, 2 for the squares).
    Each sums to one with a zero centre.
    """
    masks = support_masks(size)
    c = size // 2
    yy, xx = torch.meshgrid(torch.arange(size) - c, torch.arange(size) - c, indexing="ij")
    r2 = (yy**2 + xx**2).float()
    out = torch.zeros_like(masks)
    kb = torch.tensor([[-0.25, 0.5, -0.25], [0.5, 0.0, 0.5], [-0.25, 0.5, -0.25]])
    out[0, c - 1 : c + 2, c - 1 : c + 2] = kb
    sigmas = (0.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0)
    for i in range(1, NUM_FILTERS):
        g = torch.exp(-r2 / (2 * sigmas[i] ** 2)) * masks[i]
        out[i] = g / g.sum()
    return out


def _constrain(raw: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Project ``raw [F, k, k]`` onto {support only, centre 0, sum 1}; differentiable."""
    w = raw * masks
    deficit = 1.0 - w.sum(dim=(1, 2), keepdim=True)
    return w + masks * deficit / masks.sum(dim=(1, 2), keepdim=True)


class FilterBank(nn.Module):
    """Learnable bank of constrained prediction-error filters.

    Args:
        init: ``float [F, k, k]`` initial weights (default :func:`classical_filters`).
        masks: ``float [F, k, k]`` supports (default :func:`support_masks`).
    """

    def __init__(self, init: torch.Tensor | None = None, masks: torch.Tensor | None = None) -> None:
        super().__init__()
        masks = support_masks() if masks is None else masks
        init = classical_filters(masks.shape[-1]) if init is None else init
        self.masks: torch.Tensor
        self.register_buffer("masks", masks.float().clone())
        self.raw = nn.Parameter(init.float().clone())

    def weights(self) -> torch.Tensor:
        """``float [F, k, k]`` constrained weights (centre 0, support sums to 1)."""
        return _constrain(self.raw, self.masks)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """``gray [B, 1, H, W]`` -> residuals ``[B, F, H-k+1, W-k+1]`` (valid region)."""
        return residuals(gray, self.weights())


def residuals(gray: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Prediction errors ``gray - conv(gray, w)`` on the valid region.

    Args:
        gray: ``float [B, 1, H, W]`` grayscale in [0, 1].
        weights: ``float [F, k, k]`` constrained filters.
    Returns:
        ``float [B, F, H-k+1, W-k+1]``.
    """
    k = weights.shape[-1]
    c = k // 2
    predicted = F.conv2d(gray, weights.unsqueeze(1).to(gray.dtype))
    return gray[:, :, c : gray.shape[2] - c, c : gray.shape[3] - c] - predicted


def train_filters(
    bank: FilterBank,
    crops: Callable[[torch.Generator], torch.Tensor],
    steps: int = 300,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Minimise the mean squared residual of real crops; returns the loss per step.

    Args:
        bank: the filters to train in place.
        crops: draws a batch ``float [B, 1, h, w]`` of real grayscale crops from a generator.
        steps: Adam steps.
        lr: learning rate.
        seed: seeds the generator handed to ``crops``.
        progress: called with ``(step, loss)`` after each step.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(bank.parameters(), lr=lr)
    losses: list[float] = []
    for step in range(steps):
        batch = crops(gen)
        res = bank(batch)
        loss = res.pow(2).mean(dim=(0, 2, 3)).sum() * 1e3  # per-filter energy, summed
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, losses[-1])
    return losses
