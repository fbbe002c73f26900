"""Patch Selection Module (PSM) as functional ops on stride-32 feature maps.

Steps (paper section 3.3, authors' code behaviour):

1. :func:`activation_map` - channel sum ``A = sum_c F_c`` of the global feature map (7x7).
2. :func:`window_scores` - mean of ``A`` in every ``k x k`` window, stride 1 (5x5 scores for
   3x3 windows, 6x6 for 2x2 windows on a 7x7 map).
3. :func:`select_windows` - top windows with suppression: ``"grid"`` removes the pick and its 8
   neighbours on the score grid (the authors' "NMS"), ``"iou"`` removes windows whose IoU with
   the pick exceeds a threshold.
4. :func:`windows_to_boxes` - window centre (normalised to [0, 1] on the feature grid) placed
   in the central square of the ORIGINAL image, a fixed-size patch (224 px for 3x3, 112 px for
   2x2) cut around it and shifted to stay inside the image.

Boxes are ``(x0, y0, x1, y1)`` in original pixels, integer-valued float tensors. None of this is
differentiable; callers run it under ``torch.no_grad``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "Suppression",
    "activation_map",
    "central_squares",
    "select_windows",
    "window_scores",
    "windows_to_boxes",
]

Suppression = Literal["grid", "iou"]


def activation_map(features: torch.Tensor) -> torch.Tensor:
    """Channel sum of a feature map: ``[N, C, h, w] -> [N, h, w]`` (computed in float32)."""
    return features.float().sum(dim=1)


def window_scores(activation: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of ``activation [N, h, w]`` in each ``window x window`` window, stride 1.

    Returns ``[N, h - window + 1, w - window + 1]``; entry ``(r, c)`` is the window whose
    top-left cell is ``(r, c)``.
    """
    return F.avg_pool2d(activation.unsqueeze(1), kernel_size=window, stride=1).squeeze(1)


def _grid_coords(gh: int, gw: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(gh, device=device).repeat_interleave(gw)
    cols = torch.arange(gw, device=device).repeat(gh)
    return rows, cols


def select_windows(
    scores: torch.Tensor,
    k: int,
    *,
    suppression: Suppression = "grid",
    window: int = 1,
    iou_threshold: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``k`` windows per image from ``scores [N, gh, gw]``, greedily by score.

    ``"grid"``: after each pick the picked window and its 8 neighbours on the score grid are
    suppressed. The authors zero them; we set them to ``-inf``, which is the same choice
    whenever scores are positive (features are post-ReLU) and never re-picks a window when they
    are not. ``"iou"``: windows (``window`` cells wide) overlapping the pick with IoU above
    ``iou_threshold`` are suppressed. Ties go to the first window in row-major order.

    Returns:
        indices: ``int64 [N, k]`` row-major indices into the score grid (``r * gw + c``).
        values: ``[N, k]`` the original scores of the picks.
    """
    n, gh, gw = scores.shape
    if k > gh * gw:
        raise ValueError(f"cannot pick {k} windows from a {gh}x{gw} grid")
    flat = scores.reshape(n, gh * gw).float()
    work = flat.clone()
    rows, cols = _grid_coords(gh, gw, scores.device)
    picks = []
    for _ in range(k):
        index = work.argmax(dim=1)  # [N]
        picks.append(index)
        r, c = rows[index].unsqueeze(1), cols[index].unsqueeze(1)  # [N, 1]
        if suppression == "grid":
            drop = ((rows - r).abs() <= 1) & ((cols - c).abs() <= 1)
        elif suppression == "iou":
            inter = (window - (rows - r).abs()).clamp(min=0) * (window - (cols - c).abs()).clamp(
                min=0
            )
            iou = inter / (2 * window * window - inter)
            drop = iou > iou_threshold
        else:
            raise ValueError(f"unknown suppression {suppression!r}")
        drop = drop | (torch.arange(gh * gw, device=scores.device) == index.unsqueeze(1))
        work = work.masked_fill(drop, float("-inf"))
    indices = torch.stack(picks, dim=1)
    return indices, flat.gather(1, indices)


def central_squares(sizes: torch.Tensor) -> torch.Tensor:
    """Central square of each image: ``sizes int64 [N, 2] (h, w) -> float [N, 4]`` boxes.

    The square has side ``min(h, w)`` and integer offsets ``((w - s) // 2, (h - s) // 2)``;
    it is the region the global branch sees (short side resize + centre crop).
    """
    h, w = sizes[:, 0], sizes[:, 1]
    side = torch.minimum(h, w)
    x0, y0 = (w - side) // 2, (h - side) // 2
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1).float()


def windows_to_boxes(
    indices: torch.Tensor,
    sizes: torch.Tensor,
    *,
    window: int,
    grid: tuple[int, int],
    patch_size: int,
) -> torch.Tensor:
    """Map window indices to fixed-size patch boxes in original pixels.

    Args:
        indices: ``int64 [N, k]`` row-major indices into the ``(gh - window + 1, gw - window + 1)``
            score grid of a ``grid = (gh, gw)`` feature map.
        sizes: ``int64 [N, 2]`` original ``(h, w)``.
        window: window side in feature cells.
        patch_size: patch side in original pixels (224 for 3x3, 112 for 2x2).

    Returns:
        ``float [N, k, 4]`` integer-valued ``(x0, y0, x1, y1)`` boxes. The side is
        ``min(patch_size, min(h, w))``: an image smaller than a patch gives a square patch as
        large as its short side. Boxes always lie inside the image.
    """
    gh, gw = grid
    score_w = gw - window + 1
    rows = torch.div(indices, score_w, rounding_mode="floor").float()
    cols = (indices % score_w).float()
    centre_y = (rows + window / 2) / gh  # [N, k] in [0, 1]
    centre_x = (cols + window / 2) / gw
    square = central_squares(sizes).to(indices.device)  # [N, 4]
    sq_side = (square[:, 2] - square[:, 0]).unsqueeze(1)
    cx = square[:, 0:1] + centre_x * sq_side
    cy = square[:, 1:2] + centre_y * sq_side
    side = sq_side.clamp(max=patch_size)  # [N, 1]
    h = sizes[:, 0:1].to(indices.device).float()
    w = sizes[:, 1:2].to(indices.device).float()
    x0 = torch.minimum(torch.round(cx - side / 2).clamp(min=0), w - side)
    y0 = torch.minimum(torch.round(cy - side / 2).clamp(min=0), h - side)
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=2)
