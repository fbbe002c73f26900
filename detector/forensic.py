"""The forensic local branch: a small CNN trained from scratch on native-resolution patches.

GLFF's local branch sees the Patch Selection Module's patches at the image's own resolution,
the place where low-level generator traces live. With ``ModelConfig.local_backbone =
"forensic"`` those patches do not go through the ImageNet trunk (resized to 224) but through
:class:`ForensicNet`: a few 3x3 convolutions on the NPR residual ``x - up(down(x))`` of a
``FORENSIC_CROP`` square cut from the centre of each patch, never resampled (NPR, Tan et al.
CVPR 2024; LaDeDa, Cavia et al. 2024: a small receptive field trained from scratch on local
residuals generalizes across generators). Its pooled output is the patch's token, fused with
the global token by the AFFM as in the paper.

* :func:`native_crops`: ``FORENSIC_CROP`` squares at even offsets (the residual's 2x2 grid
  stays aligned with the image's) from a padded ``uint8`` batch, no interpolation;
* :class:`ForensicNet`: ``[N, 3, S, S]`` pixels in [0, 255] -> ``[N, C, S/4, S/4]`` features;
  any ``S`` divisible by 4 (trained on smaller random crops, run on ``FORENSIC_CROP``).
"""

from __future__ import annotations

import torch
from torch import nn

from detector.representation import npr_residual

__all__ = ["FORENSIC_CROP", "FORENSIC_WIDTH", "ForensicNet", "native_crops"]

FORENSIC_CROP = 112
"""Side of the native crop cut from each patch (the small patches' own side)."""
FORENSIC_WIDTH = 16
"""Channels of the first stage; the three stages have 1x, 2x, 4x this width."""
RESIDUAL_GAIN = 1.0 / 16.0
"""Residuals of 8-bit pixels are mostly within +-16: scaled to about unit size."""


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class ForensicNet(nn.Module):
    """Three stages of two 3x3 convolutions on the NPR residual (stride 1, 2, 2).

    ``forward(x float [N, 3, S, S] in [0, 255]) -> float [N, 4 * width, S / 4, S / 4]``.
    Named like a :class:`detector.backbones.Backbone` (``name``, ``out_channels``).
    """

    def __init__(self, width: int = FORENSIC_WIDTH) -> None:
        super().__init__()
        self.name = "forensic"
        self.out_channels = 4 * width
        w = width
        self.features = nn.Sequential(
            *_conv(3, w),
            *_conv(w, w),
            *_conv(w, 2 * w, stride=2),
            *_conv(2 * w, 2 * w),
            *_conv(2 * w, 4 * w, stride=2),
            *_conv(4 * w, 4 * w),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = npr_residual(x.float()) * RESIDUAL_GAIN
        out: torch.Tensor = self.features(residual)
        return out


def native_crops(
    pixels: torch.Tensor, sizes: torch.Tensor, boxes: torch.Tensor, size: int = FORENSIC_CROP
) -> torch.Tensor:
    """``size`` x ``size`` squares at the centres of ``boxes``, cut without resampling.

    Args:
        pixels: ``uint8 [B, 3, H, W]`` zero-padded batch (image ``i`` in ``[:h_i, :w_i]``).
        sizes: ``int64 [B, 2]`` rows ``(h_i, w_i)``.
        boxes: ``float [B, K, 4]`` x1y1x2y2 in original pixels.

    Returns:
        ``float [B, K, 3, size, size]`` in [0, 255]. A square is moved inside its image and
        starts at even coordinates; an image smaller than ``size`` is zero-padded.
    """
    b, k = boxes.shape[:2]
    out = pixels.new_zeros((b, k, 3, size, size), dtype=torch.float32)
    centres = ((boxes[..., :2] + boxes[..., 2:]) / 2).round().long().cpu()  # [B, K, (x, y)]
    for i in range(b):
        h, w = int(sizes[i, 0]), int(sizes[i, 1])
        ch, cw = min(size, h), min(size, w)
        for j in range(k):
            x0 = _start(int(centres[i, j, 0]), cw, w)
            y0 = _start(int(centres[i, j, 1]), ch, h)
            out[i, j, :, :ch, :cw] = pixels[i, :, y0 : y0 + ch, x0 : x0 + cw]
    return out


def _start(centre: int, extent: int, limit: int) -> int:
    """Even start of an ``extent``-long window centred at ``centre`` inside ``[0, limit)``."""
    start = max(0, min(centre - extent // 2, limit - extent))
    return start - (start % 2)
