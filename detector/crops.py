"""Batched crop-and-resize on the model's device, one ``roi_align`` call for many boxes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
    if images.device.type == "cpu":
        out = _cpu_crops(images, rois, output_size)
    else:
        out = _roi_align(images, rois, output_size)
    return out.reshape(b, k, *out.shape[1:])


def _roi_align(images: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    return roi_align(images, rois, size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _cpu_crops(images: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """``roi_align`` with two fast paths for the common patch boxes (CPU only).

    ``roi_align``'s CPU kernel is slow (it precomputes every sample's weights per box). For an
    integer box of side ``size`` its samples fall exactly on pixels: a copy (bit-identical). For
    an integer box of side ``size / 2`` with a pixel of margin inside the tensor, its samples
    are those of a 2x bilinear upsampling (``align_corners=False``) of the box plus that margin:
    the same weights, equal up to float rounding. Other boxes go through ``roi_align``.
    """
    _, channels, height, width = images.shape
    box = rois[:, 1:]
    x0, y0, x1, y1 = box.unbind(1)
    integer = (box == box.round()).all(dim=1)
    side_x, side_y = x1 - x0, y1 - y0
    inside = (x0 >= 0) & (y0 >= 0) & (x1 <= width) & (y1 <= height)
    copy = integer & (side_x == size) & (side_y == size) & inside
    margin = (x0 >= 1) & (y0 >= 1) & (x1 <= width - 1) & (y1 <= height - 1)
    half = integer & (size % 2 == 0) & (side_x * 2 == size) & (side_y * 2 == size) & margin
    out = images.new_empty(rois.shape[0], channels, size, size)
    for n in torch.nonzero(copy).flatten().tolist():
        i, left, top = int(rois[n, 0]), int(x0[n]), int(y0[n])
        out[n] = images[i, :, top : top + size, left : left + size]
    upsample = torch.nonzero(half).flatten().tolist()
    if upsample:
        m = size // 2 + 2
        windows = torch.stack(
            [
                images[int(rois[n, 0]), :, int(y0[n]) - 1 : int(y0[n]) - 1 + m][
                    :, :, int(x0[n]) - 1 : int(x0[n]) - 1 + m
                ]
                for n in upsample
            ]
        )
        up = F.interpolate(windows, scale_factor=2, mode="bilinear", align_corners=False)
        out[upsample] = up[:, :, 2 : size + 2, 2 : size + 2]
    rest = torch.nonzero(~(copy | half)).flatten()
    if rest.numel():
        out[rest] = _roi_align(images, rois[rest], size)
    return out


def normalize(
    crops: torch.Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """``[..., 3, S, S]`` crops in [0, 255] -> ImageNet-normalised."""
    m = torch.tensor(mean, device=crops.device, dtype=crops.dtype).view(3, 1, 1) * 255.0
    s = torch.tensor(std, device=crops.device, dtype=crops.dtype).view(3, 1, 1) * 255.0
    return (crops - m) / s
