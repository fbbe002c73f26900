"""Forensic self-descriptions: a per-image constrained least-squares model of its residuals.

For an image (or a box of it), the residuals of the filter bank (:mod:`.filters`) are taken at
``scales`` scales (each a bilinear halving, i.e. a 2x2 mean, of the previous). At each scale a
linear model predicts every sampled pixel's summed residual ``y(p) = sum_c r_c(p)`` from the
residuals of all ``F`` channels in its ``n x n`` neighbourhood (centre excluded, ``P = n*n-1``
positions), with the constraint that each channel's ``P`` coefficients sum to one. The
coefficients minimise ``||y - Xw||^2 + ridge * ||w||^2`` under ``A w = 1`` and come from the KKT
system (:func:`solve_kkt`), with ``X'X`` accumulated in chunks of pixels. The description is the
``scales * F * P`` coefficients (2,880 with the defaults: 3 scales, 8 filters, 11x11).

Cost is bounded: at most ``max_pixels`` pixels per scale enter the fit (a uniform random sample,
fixed seed, so a description is deterministic), and a region larger than ``max_side`` along a
side is described on its central ``max_side`` crop. The filtering is linear in the pixels of that
crop; the fit is ``O(max_pixels * (F*P)^2)`` per scale whatever the image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from detector.zeroshot.filters import residuals

__all__ = [
    "DescribeParams",
    "describe_boxes",
    "describe_gray",
    "describe_image",
    "neighbour_offsets",
    "normal_equations",
    "solve_kkt",
    "to_gray",
]


@dataclass(frozen=True)
class DescribeParams:
    """Parameters of the self-description (stored in the artifact)."""

    neighbourhood: int = 11
    scales: int = 3
    max_pixels: int = 4096
    max_side: int = 1024
    ridge: float = 1e-3
    seed: int = 0
    chunk: int = 1024

    def __post_init__(self) -> None:
        if self.neighbourhood < 3 or self.neighbourhood % 2 == 0:
            raise ValueError("neighbourhood must be odd and >= 3")
        if self.scales < 1 or self.max_pixels < 1 or self.chunk < 1:
            raise ValueError("scales, max_pixels and chunk must be >= 1")

    def dim(self, num_filters: int) -> int:
        """Length of a description."""
        return self.scales * num_filters * (self.neighbourhood**2 - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the artifact's metadata."""
        return asdict(self)


def neighbour_offsets(n: int) -> list[tuple[int, int]]:
    """Row-major ``(dy, dx)`` offsets of an ``n x n`` neighbourhood without its centre."""
    r = n // 2
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)]


def to_gray(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8 [H, W, 3]`` / ``[H, W]`` (numpy) or ``[3, H, W]`` (tensor) -> ``float [H, W]`` luma.

    ITU-R BT.601 weights, values in [0, 1].
    """
    t = torch.from_numpy(np.array(image)) if isinstance(image, np.ndarray) else image
    t = t.float() / 255.0
    if t.ndim == 2:
        return t
    if isinstance(image, np.ndarray):
        t = t.permute(2, 0, 1)
    if t.shape[0] == 1:
        return t[0]
    return 0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]


def normal_equations(
    res: torch.Tensor, positions: torch.Tensor, n: int, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``X'X`` and ``X'y`` of the neighbourhood model at the given pixels.

    Args:
        res: ``float [B, F, h, w]`` residuals.
        positions: ``int64 [N]`` flat indices ``y * w + x`` at least ``n // 2`` from every border.
        n: neighbourhood side.
        chunk: pixels per accumulation step.
    Returns:
        ``float64 [B, F*P, F*P]`` and ``float64 [B, F*P]``; column ``c * P + j`` is channel ``c``
        at :func:`neighbour_offsets` ``j``.
    """
    b, f, _, w = res.shape
    flat = res.reshape(b, f, -1)
    lin = torch.tensor([dy * w + dx for dy, dx in neighbour_offsets(n)], device=res.device)
    dim = f * lin.numel()
    gram = torch.zeros(b, dim, dim, dtype=torch.float64, device=res.device)
    rhs = torch.zeros(b, dim, dtype=torch.float64, device=res.device)
    for start in range(0, positions.numel(), chunk):
        pos = positions[start : start + chunk]
        x = flat[:, :, pos[:, None] + lin[None, :]]  # [B, F, N, P]
        x = x.permute(0, 2, 1, 3).reshape(b, pos.numel(), dim)
        y = flat[:, :, pos].sum(dim=1)  # [B, N]
        gram += torch.bmm(x.transpose(1, 2), x).double()
        rhs += torch.bmm(x.transpose(1, 2), y.unsqueeze(2)).squeeze(2).double()
    return gram, rhs


def solve_kkt(gram: torch.Tensor, rhs: torch.Tensor, groups: int, ridge: float) -> torch.Tensor:
    """Minimise ``w'Gw - 2 w'b + ridge' ||w||^2`` s.t. each of ``groups`` blocks sums to one.

    ``ridge' = ridge * mean(diag G)`` (scale-free). The KKT system
    ``[[G + ridge' I, A'], [A, 0]] [w; mu] = [b; 1]`` is solved in float64.

    Args:
        gram: ``float [B, D, D]`` (``X'X``); rhs: ``float [B, D]`` (``X'y``); ``D = groups * P``.
    Returns:
        ``float64 [B, D]``.
    """
    bsz, d, _ = gram.shape
    p = d // groups
    g = gram.double()
    scale = g.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-30)
    eye = torch.eye(d, dtype=torch.float64, device=g.device)
    a = torch.repeat_interleave(torch.eye(groups, dtype=torch.float64, device=g.device), p, dim=1)
    kkt = torch.zeros(bsz, d + groups, d + groups, dtype=torch.float64, device=g.device)
    kkt[:, :d, :d] = g + ridge * scale[:, None, None] * eye
    kkt[:, :d, d:] = a.T
    kkt[:, d:, :d] = a
    target = torch.cat(
        [rhs.double(), torch.ones(bsz, groups, dtype=torch.float64, device=g.device)], 1
    )
    return torch.linalg.solve(kkt, target)[:, :d]


def _positions(h: int, w: int, r: int, cap: int, seed: int, device: torch.device) -> torch.Tensor:
    """Flat indices of up to ``cap`` pixels at least ``r`` from the borders (seeded sample)."""
    ih, iw = h - 2 * r, w - 2 * r
    if ih * iw <= cap:
        ys, xs = torch.meshgrid(torch.arange(ih), torch.arange(iw), indexing="ij")
        ys, xs = ys.reshape(-1), xs.reshape(-1)
    else:
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(ih * iw, generator=gen)[:cap] if ih * iw <= 1 << 22 else None
        if pick is None:
            pick = torch.randint(0, ih * iw, (cap,), generator=gen)
        ys, xs = pick // iw, pick % iw
    return ((ys + r) * w + xs + r).to(device)


def _fit_scale(res: torch.Tensor, params: DescribeParams, scale: int) -> torch.Tensor:
    """Coefficients ``float64 [B, F*P]`` at one scale (uniform ``1/P`` if too small to fit)."""
    b, f, h, w = res.shape
    n, r = params.neighbourhood, params.neighbourhood // 2
    p = n * n - 1
    if h <= 2 * r or w <= 2 * r:
        return torch.full((b, f * p), 1.0 / p, dtype=torch.float64, device=res.device)
    rms = res.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
    pos = _positions(h, w, r, params.max_pixels, params.seed + scale, res.device)
    gram, rhs = normal_equations(res / rms, pos, n, params.chunk)
    return solve_kkt(gram, rhs, f, params.ridge)


def describe_gray(
    gray: torch.Tensor, weights: torch.Tensor, params: DescribeParams
) -> torch.Tensor:
    """Self-descriptions of a batch of same-sized grayscale images.

    Args:
        gray: ``float [B, 1, H, W]`` in [0, 1] (already cropped to ``max_side``).
        weights: ``float [F, k, k]`` constrained filters.
    Returns:
        ``float32 [B, scales * F * P]``, scale-major.
    """
    k = weights.shape[-1]
    if min(gray.shape[-2:]) < k:  # too small to filter: the minimum-norm description
        p = params.neighbourhood**2 - 1
        return torch.full((gray.shape[0], params.dim(weights.shape[0])), 1.0 / p)
    res = residuals(gray, weights.to(gray.device))
    parts = []
    for s in range(params.scales):
        if s:
            res = F.avg_pool2d(res, 2) if min(res.shape[-2:]) >= 2 else res
        parts.append(_fit_scale(res, params, s))
    return torch.cat(parts, dim=1).float()


def _centre_crop(gray: torch.Tensor, side: int) -> torch.Tensor:
    h, w = gray.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return gray[..., top : top + min(h, side), left : left + min(w, side)]


def describe_image(
    image: np.ndarray | torch.Tensor,
    weights: torch.Tensor,
    params: DescribeParams,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``uint8`` image (see :func:`to_gray`) -> ``float32 [D]`` description (on CPU)."""
    gray = _centre_crop(to_gray(image), params.max_side).to(device)
    return describe_gray(gray[None, None], weights, params)[0].cpu()


def describe_boxes(
    image: np.ndarray | torch.Tensor,
    boxes: torch.Tensor | np.ndarray,
    weights: torch.Tensor,
    params: DescribeParams,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """One description per box: ``boxes [K, 4]`` ``(x0, y0, x1, y1)`` pixels -> ``float32 [K, D]``.

    The residuals of a box use the pixels around it when the image has them (the filter's
    margin), so a box's description matches that of the same pixels inside a larger image.
    Boxes of equal size are described in one batch.
    """
    gray = to_gray(image).to(device)
    h, w = gray.shape
    m = weights.shape[-1] // 2
    crops: list[torch.Tensor] = []
    for x0, y0, x1, y1 in torch.as_tensor(boxes).round().long().tolist():
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        crop = gray[max(0, y0 - m) : min(h, y1 + m), max(0, x0 - m) : min(w, x1 + m)]
        crops.append(_centre_crop(crop, params.max_side + 2 * m))
    out = torch.zeros(len(crops), params.dim(weights.shape[0]))
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, crop in enumerate(crops):
        by_size.setdefault((crop.shape[0], crop.shape[1]), []).append(i)
    for idx in by_size.values():
        batch = torch.stack([crops[i] for i in idx]).unsqueeze(1)
        out[idx] = describe_gray(batch, weights, params).cpu()
    return out
