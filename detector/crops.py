"""Batched crop-and-resize on the model's device, one ``roi_align`` call for many boxes."""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "crop_and_resize", "normalize", "prepare_pixels"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def prepare_pixels(pixels: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Padded ``uint8 [B, 3, H, W]`` batch -> ``float32`` in [0, 255], ready for crops.

    The row and column just past each image (``y = h_i`` and ``x = w_i``, when inside the
    padded tensor) are set to a copy of the image's last row and column. Bilinear samples near
    the right or bottom edge of an image then read the edge value, exactly as when the image is
    cropped alone (``roi_align`` clamps at the tensor border), instead of blending in padding.
    """
    x = pixels.float() if pixels.dtype != torch.float32 else pixels.clone()
    b, _, h_max, w_max = x.shape
    sizes = sizes.to(x.device)
    batch = torch.arange(b, device=x.device)
    h, w = sizes[:, 0], sizes[:, 1]
    if bool((w < w_max).any()):
        col = x[batch, :, :, w - 1]  # [B, 3, H]
        x[batch, :, :, w.clamp(max=w_max - 1)] = col
    if bool((h < h_max).any()):
        row = x[batch, :, h - 1, :]  # [B, 3, W]
        x[batch, :, h.clamp(max=h_max - 1), :] = row
    return x


def crop_and_resize(images: torch.Tensor, boxes: torch.Tensor, output_size: int) -> torch.Tensor:
    """Crop every box of every image and resize it to ``output_size`` in one call.

    Args:
        images: ``float [B, 3, H, W]`` (see :func:`prepare_pixels`).
        boxes: ``float [B, K, 4]`` ``(x0, y0, x1, y1)`` in pixels of the matching image.
        output_size: side of the square output.

    Returns:
        ``float [B, K, 3, S, S]``. Resampling is ``roi_align`` with ``aligned=True`` and an
        adaptive sampling ratio (``ceil(box side / S)`` bilinear samples per output pixel and
        axis): an area-average when shrinking, bilinear when enlarging, and an exact pixel copy
        when an integer box has the output's size.
    """
    b, k = boxes.shape[:2]
    index = torch.arange(b, device=images.device, dtype=images.dtype).repeat_interleave(k)
    rois = torch.cat([index.unsqueeze(1), boxes.reshape(b * k, 4).to(images)], dim=1)
    out = roi_align(images, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.reshape(b, k, *out.shape[1:])


def normalize(
    crops: torch.Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """``[..., 3, S, S]`` crops in [0, 255] -> ImageNet-normalised."""
    m = torch.tensor(mean, device=crops.device, dtype=crops.dtype).view(3, 1, 1) * 255.0
    s = torch.tensor(std, device=crops.device, dtype=crops.dtype).view(3, 1, 1) * 255.0
    return (crops - m) / s
