"""Patch strategies of the paper's Table 2: ``psm`` (ours), ``random`` and ``rsz448``.

- ``psm``: the Patch Selection Module (:mod:`detector.psm`) - top 3 windows of 3x3 (224 px
  patches) then top 3 of 2x2 (112 px patches): 6 patches, token order 3 large, 3 small.
- ``random`` (Our_RdmCrop): the same 6 windows and mapping, picked from random scores instead
  of activations (the same suppression), so only the choice differs from ``psm``.
- ``rsz448`` (Our_Rsz448): the central square resized to 448 and cut into four corner crops and
  a centre crop of 224; done directly as 5 boxes of half the square's side on the original image.
  This gives 5 patch tokens instead of 6: the AFFM has no positional embedding, so it takes any
  number of tokens, and outputs have ``K = 5`` patches (``window = 0``) and 6 attention weights.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torchvision.ops import roi_align

from detector.psm import (
    Suppression,
    activation_map,
    central_squares,
    select_windows,
    window_scores,
    windows_to_boxes,
)

__all__ = [
    "PATCH_STRATEGIES",
    "PatchSelection",
    "PatchStrategy",
    "num_patches",
    "rsz448_boxes",
    "select_patches",
    "with_activations",
]

PatchStrategy = Literal["psm", "random", "rsz448"]
PATCH_STRATEGIES: tuple[str, ...] = ("psm", "random", "rsz448")
# (window side in feature cells, patch side in original pixels, patches per window size)
PSM_WINDOWS: tuple[tuple[int, int, int], ...] = ((3, 224, 3), (2, 112, 3))


class PatchSelection(NamedTuple):
    """Selected patches of a batch.

    boxes: ``float [B, K, 4]`` integer-valued ``(x0, y0, x1, y1)`` in original pixels.
    windows: ``int64 [B, K]`` window side in feature cells (3 or 2; 0 for ``rsz448`` crops).
    indices: ``int64 [B, K]`` row-major window index in its score grid (-1 for ``rsz448``).
    activations: ``float [B, K]`` mean activation of the feature map under each window (for
        ``rsz448``: under each crop's region); zeros until :func:`with_activations` fills them
        when the boxes were chosen without features.
    """

    boxes: torch.Tensor
    windows: torch.Tensor
    indices: torch.Tensor
    activations: torch.Tensor


def num_patches(strategy: str) -> int:
    """Number of patch tokens a strategy produces."""
    return 5 if strategy == "rsz448" else sum(n for _, _, n in PSM_WINDOWS)


def select_patches(
    features: torch.Tensor | None,
    sizes: torch.Tensor,
    strategy: str,
    *,
    grid: tuple[int, int] = (7, 7),
    suppression: Suppression = "grid",
    iou_threshold: float = 0.25,
    generator: torch.Generator | None = None,
) -> PatchSelection:
    """Choose patch boxes for each image.

    Args:
        features: ``[B, C, gh, gw]`` global feature maps (7x7 at 224). Required for ``psm``;
            optional for ``random`` and ``rsz448`` (activations are then zeros).
        sizes: ``int64 [B, 2]`` original ``(h, w)``.
        strategy: ``"psm"``, ``"random"`` or ``"rsz448"``.
        grid: feature grid shape when ``features`` is ``None``.
    """
    with torch.no_grad():
        device = features.device if features is not None else sizes.device
        sizes = sizes.to(device)
        b = int(sizes.shape[0])
        if strategy == "rsz448":
            minus = torch.full((b, 5), -1, dtype=torch.int64, device=device)
            zeros = torch.zeros(b, 5, device=device)
            empty = PatchSelection(rsz448_boxes(sizes), torch.zeros_like(minus), minus, zeros)
            return empty if features is None else with_activations(empty, features, sizes)
        if strategy not in ("psm", "random"):
            raise ValueError(f"unknown patch strategy {strategy!r}")
        if features is not None:
            grid = (int(features.shape[2]), int(features.shape[3]))
            activation = activation_map(features)
        elif strategy == "psm":
            raise ValueError("the psm strategy needs feature maps")
        boxes: list[torch.Tensor] = []
        windows: list[torch.Tensor] = []
        indices: list[torch.Tensor] = []
        for window, patch_size, count in PSM_WINDOWS:
            shape = (b, grid[0] - window + 1, grid[1] - window + 1)
            if strategy == "psm":
                choice = window_scores(activation, window)
            else:
                choice = torch.rand(shape, generator=generator, device=device)
            index, _ = select_windows(
                choice, count, suppression=suppression, window=window, iou_threshold=iou_threshold
            )
            boxes.append(
                windows_to_boxes(index, sizes, window=window, grid=grid, patch_size=patch_size)
            )
            windows.append(torch.full_like(index, window))
            indices.append(index)
        k = num_patches(strategy)
        selection = PatchSelection(
            torch.cat(boxes, 1),
            torch.cat(windows, 1),
            torch.cat(indices, 1),
            torch.zeros(b, k, device=device),
        )
        return selection if features is None else with_activations(selection, features, sizes)


def with_activations(
    selection: PatchSelection, features: torch.Tensor, sizes: torch.Tensor
) -> PatchSelection:
    """Fill ``selection.activations`` from the global feature maps ``[B, C, gh, gw]``."""
    with torch.no_grad():
        activation = activation_map(features)  # [B, gh, gw]
        values = torch.zeros(selection.windows.shape, device=features.device)
        for window in (2, 3):
            mask = selection.windows == window
            if bool(mask.any()):
                scores = window_scores(activation, window).flatten(1)
                picked = scores.gather(1, selection.indices.clamp(min=0) % scores.shape[1])
                values = torch.where(mask, picked, values)
        crops = selection.windows == 0
        if bool(crops.any()):
            values = torch.where(crops, _region_means(activation, selection.boxes, sizes), values)
        return selection._replace(activations=values)


def _region_means(
    activation: torch.Tensor, boxes: torch.Tensor, sizes: torch.Tensor
) -> torch.Tensor:
    """Mean of ``activation [B, gh, gw]`` under pixel ``boxes [B, K, 4]`` of the central square."""
    b, k = boxes.shape[:2]
    square = central_squares(sizes).to(boxes.device)
    scale = activation.shape[-1] / (square[:, 2] - square[:, 0])  # feature cells per pixel
    local = (boxes - square[:, None, [0, 1, 0, 1]]) * scale[:, None, None]
    index = torch.arange(b, device=boxes.device, dtype=local.dtype).repeat_interleave(k)
    rois = torch.cat([index.unsqueeze(1), local.reshape(-1, 4)], dim=1)
    means = roi_align(activation.unsqueeze(1), rois, 1, sampling_ratio=8, aligned=True)
    return means.reshape(b, k)


def rsz448_boxes(sizes: torch.Tensor) -> torch.Tensor:
    """Four corners and the centre of the central square, each half its side: ``[B, 5, 4]``."""
    square = central_squares(sizes)
    x0, y0 = square[:, 0], square[:, 1]
    side = square[:, 2] - square[:, 0]
    half = torch.div(side, 2, rounding_mode="floor")
    far = side - half
    mid = torch.div(side - half, 2, rounding_mode="floor")
    zero = torch.zeros_like(side)
    offsets = [(zero, zero), (far, zero), (zero, far), (far, far), (mid, mid)]
    boxes = [
        torch.stack([x0 + dx, y0 + dy, x0 + dx + half, y0 + dy + half], dim=1) for dx, dy in offsets
    ]
    return torch.stack(boxes, dim=1)
