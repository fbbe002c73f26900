"""Batched crop-and-resize of boxes to square views: ``roi_align`` and its fast CPU equivalent.

Every view is ``roi_align(aligned=True, sampling_ratio=-1)`` of an image: ``ceil(side / S)``
bilinear samples per output pixel and axis, averaged (an area average when shrinking, bilinear
when enlarging, an exact pixel copy when an integer box has the output's size).

- :func:`crop_and_resize` / :func:`roi_crops`: one ``roi_align`` call over a float batch
  prepared by :func:`prepare_pixels` (the reference; used on CUDA).
- :func:`resample_views`: the same samples computed separably on the CPU, straight from the
  ``uint8`` pixels, per image and never on the padding: a bilinear sample's weight is a product
  of a row weight and a column weight, so each view is two small banded matrix products (rows,
  then columns) instead of ``ceil(side / S)^2`` weighted reads per output pixel. An integer box
  of the output's size is a copy, one of half its size a 2x bilinear upsampling. Equal to
  :func:`roi_crops` up to float rounding (about 1e-4 on [0, 255]; a test pins it).
"""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "crop_and_resize",
    "normalize",
    "prepare_pixels",
    "resample_views",
    "roi_crops",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BLOCK = 16  # output rows (columns) per banded block; divides 224


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
    """Crop every box of every image and resize it to ``output_size``.

    Args:
        images: ``float [B, C, H, W]`` (see :func:`prepare_pixels`).
        boxes: ``float [B, K, 4]`` ``(x0, y0, x1, y1)`` in pixels of the matching image.
        output_size: side of the square output.

    Returns:
        ``float [B, K, C, S, S]``: :func:`roi_crops`, computed by :func:`resample_views` on the
        CPU (the whole tensor counts as the image, as for ``roi_align``).
    """
    if images.device.type == "cpu":
        b, _, h, w = images.shape
        sizes = torch.tensor([[h, w]], dtype=torch.int64).expand(b, 2)
        return resample_views(images, sizes, boxes, output_size)
    return roi_crops(images, boxes, output_size)


def roi_crops(images: torch.Tensor, boxes: torch.Tensor, output_size: int) -> torch.Tensor:
    """:func:`crop_and_resize` as one ``roi_align`` call (the reference; any device)."""
    b, k = boxes.shape[:2]
    index = torch.arange(b, device=images.device, dtype=images.dtype).repeat_interleave(k)
    rois = torch.cat([index.unsqueeze(1), boxes.reshape(b * k, 4).to(images)], dim=1)
    out = roi_align(images, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.reshape(b, k, *out.shape[1:])


def _taps(
    start: torch.Tensor, length: torch.Tensor, limit: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One axis of ``roi_align``'s samples for ``N`` boxes.

    Args:
        start, length: ``float [N]`` box start and side on this axis; limit: ``[N]`` the image's
            extent on this axis (samples past its last pixel read the last pixel).

    Returns:
        ``int64 [N, S, T]`` input indices and ``float [N, S, T]`` weights: output ``p`` is
        ``sum_t weight[p, t] * input[index[p, t]]`` (two bilinear taps per sample, each sample
        weighted ``1 / ratio``; unused taps have weight 0 and repeat the first index).
    """
    n = start.shape[0]
    ratio = torch.ceil(length / size).clamp(min=1)  # samples per output pixel on this axis
    r_max = int(ratio.max())
    bin_size = (length / size).view(n, 1, 1)
    pixel = torch.arange(size, dtype=torch.float32).view(1, size, 1)
    sample = torch.arange(r_max, dtype=torch.float32).view(1, 1, r_max)
    r = ratio.view(n, 1, 1)
    pos = (start.view(n, 1, 1) - 0.5) + pixel * bin_size + (sample + 0.5) * bin_size / r
    pos = pos.clamp(min=0)
    last = (limit.view(n, 1, 1) - 1).to(pos)
    low = torch.minimum(pos.floor(), last)
    frac = torch.where(low >= last, torch.zeros_like(pos), pos - low)
    high = torch.minimum(low + 1, last)
    used = (sample < r).to(pos) / r  # 1/ratio for real samples, 0 for padding ones
    index = torch.stack([low, high], dim=3).flatten(2).long()
    weight = torch.stack([(1 - frac) * used, frac * used], dim=3).flatten(2)
    return torch.where(weight > 0, index, index[:, :, :1]), weight


def _bands(
    index: torch.Tensor, weight: torch.Tensor, block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_taps` as banded blocks of ``block`` outputs (``block`` divides ``S``).

    Returns:
        first: ``int64 [N, nb]`` the first input index of each block;
        weights: ``float [N, nb, block, span]``: output ``b * block + g`` is
        ``sum_j weights[b, g, j] * input[first[b] + j]``.
    """
    n, size, taps = index.shape
    nb = size // block
    first = index.view(n, nb, block * taps).min(dim=2).values  # [N, nb]
    local = index - first.repeat_interleave(block, dim=1).unsqueeze(2)
    span = int(local.max()) + 1
    weights = torch.zeros(n, size, span)
    weights.scatter_add_(2, local, weight)
    return first, weights.view(n, nb, block, span)


def _resample_one(
    image: torch.Tensor,
    rows: tuple[list[int], torch.Tensor],
    cols: tuple[list[int], torch.Tensor],
    out: torch.Tensor,
) -> None:
    """Write the view of ``image [C, h, w]`` (unpadded) given by one box's bands into ``out``.

    Rows first, block by block from the ``uint8`` pixels (each block converted to float on its
    own, so that it stays in cache), then columns.
    """
    (row_first, row_w), (col_first, col_w) = rows, cols
    channels, height, width = image.shape
    block = row_w.shape[1]
    c0 = min(col_first)
    c1 = min(width, max(col_first) + col_w.shape[2])
    size = block * len(row_first)
    tmp = torch.empty(channels, size, c1 - c0)
    for b, first in enumerate(row_first):
        end = min(first + row_w.shape[2], height)
        pixels = image[:, first:end, c0:c1].float()
        torch.matmul(row_w[b, :, : end - first], pixels, out=tmp[:, b * block : (b + 1) * block])
    for b, first in enumerate(col_first):
        end = min(first + col_w.shape[2], c1)
        weights = col_w[b, :, : end - first].t()
        out[:, :, b * block : (b + 1) * block] = torch.matmul(
            tmp[:, :, first - c0 : end - c0], weights
        )


def _upsample2x(region: torch.Tensor, out: torch.Tensor) -> None:
    """``region [C, m + 2, m + 2]`` (a box and a pixel of margin) -> ``out [C, 2m, 2m]``.

    Bilinear 2x (``align_corners=False``): output ``2i`` is ``x[i] + 0.25 (x[i-1] - x[i])``,
    output ``2i + 1`` is ``x[i] + 0.25 (x[i+1] - x[i])`` (box coordinates), rows then columns;
    these are roi_align's samples for a box of half the output's side.
    """
    channels, m = region.shape[0], region.shape[1] - 2
    centre = region[:, 1:-1]
    tall = region.new_empty(channels, m, 2, m + 2)
    torch.lerp(centre, region[:, :-2], 0.25, out=tall[:, :, 0])
    torch.lerp(centre, region[:, 2:], 0.25, out=tall[:, :, 1])
    tall = tall.view(channels, 2 * m, m + 2)
    centre = tall[:, :, 1:-1]
    wide = out.view(channels, 2 * m, m, 2)
    wide[..., 0] = torch.lerp(centre, tall[:, :, :-2], 0.25)
    wide[..., 1] = torch.lerp(centre, tall[:, :, 2:], 0.25)


def _fast_boxes(
    flat: torch.Tensor, limits: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the boxes that are plain copies (integer, side ``S``, inside) and of those that
    are a bilinear 2x upsampling (integer, side ``S/2``, inside)."""
    integer = (flat == flat.round()).all(dim=1)
    sides = flat[:, 2:] - flat[:, :2]
    inside = (
        (flat[:, :2] >= 0).all(dim=1) & (flat[:, 2] <= limits[:, 1]) & (flat[:, 3] <= limits[:, 0])
    )
    copy = integer & (sides == size).all(dim=1) & inside
    half = integer & (size % 2 == 0) & (sides * 2 == size).all(dim=1) & inside & ~copy
    return copy, half


def _copy_and_upsample(
    pixels: torch.Tensor,
    flat: torch.Tensor,
    limits: torch.Tensor,
    images: list[int],
    copy: torch.Tensor,
    half: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Fill ``out`` for the copy boxes, and for the half-size ones by 2x upsampling of the box
    and a pixel of margin (the edge pixel repeated at the image's edge, as roi_align clamps)."""
    size = out.shape[-1]
    starts = flat[:, :2].long().tolist()
    heights, widths = limits[:, 0].tolist(), limits[:, 1].tolist()
    for n in torch.nonzero(copy).flatten().tolist():
        x0, y0 = starts[n]
        out[n] = pixels[images[n], :, y0 : y0 + size, x0 : x0 + size]
    window = torch.arange(-1, size // 2 + 1)
    for n in torch.nonzero(half).flatten().tolist():
        x0, y0 = starts[n]
        ys = (window + y0).clamp(0, heights[n] - 1)
        xs = (window + x0).clamp(0, widths[n] - 1)
        region = pixels[images[n]].index_select(1, ys).index_select(2, xs).float()
        _upsample2x(region, out[n])


def _resample_banded(
    pixels: torch.Tensor,
    flat: torch.Tensor,
    limits: torch.Tensor,
    images: list[int],
    banded: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Fill ``out`` for the other boxes: banded row and column passes, each with its own bands."""
    size = out.shape[-1]
    heights, widths = limits[:, 0].tolist(), limits[:, 1].tolist()
    sel = flat[banded]
    row_taps = _taps(sel[:, 1], sel[:, 3] - sel[:, 1], limits[banded, 0], size)
    col_taps = _taps(sel[:, 0], sel[:, 2] - sel[:, 0], limits[banded, 1], size)
    for j, n in enumerate(banded.tolist()):
        row_first, row_w = _bands(row_taps[0][j : j + 1], row_taps[1][j : j + 1], BLOCK)
        col_first, col_w = _bands(col_taps[0][j : j + 1], col_taps[1][j : j + 1], BLOCK)
        _resample_one(
            pixels[images[n], :, : heights[n], : widths[n]],
            (row_first[0].tolist(), row_w[0]),
            (col_first[0].tolist(), col_w[0]),
            out[n],
        )


def resample_views(
    pixels: torch.Tensor,
    sizes: torch.Tensor,
    boxes: torch.Tensor,
    output_size: int,
    scale: torch.Tensor | None = None,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`roi_crops` of the unpadded images, computed on the CPU (see module docstring).

    Args:
        pixels: ``[B, C, H, W]`` (``uint8`` or float, zero-padded or not: only
            ``[:, :h_i, :w_i]`` is read, its last row and column extended past the edge).
        sizes: ``int64 [B, 2]`` the images' ``(h, w)``.
        boxes: ``float [B, K, 4]`` inside the images.
        output_size: ``S``, a multiple of 16.
        scale, shift: optional ``[C]``: the output is ``view * scale + shift`` (normalisation,
            applied in place).

    Returns:
        ``float32 [B, K, C, S, S]``.
    """
    b, k = boxes.shape[:2]
    size, channels = output_size, pixels.shape[1]
    if size % BLOCK:
        raise ValueError(f"output_size must be a multiple of {BLOCK}")
    flat = boxes.reshape(b * k, 4).float().cpu()
    image_of = torch.arange(b).repeat_interleave(k)
    limits = sizes.cpu()[image_of]  # [N, 2] (h, w)
    out = torch.empty(b * k, channels, size, size)
    copy, half = _fast_boxes(flat, limits, size)
    images = image_of.tolist()
    _copy_and_upsample(pixels, flat, limits, images, copy, half, out)
    banded = torch.nonzero(~(copy | half)).flatten()
    if banded.numel():
        _resample_banded(pixels, flat, limits, images, banded, out)
    if scale is not None:
        out.mul_(scale.view(1, channels, 1, 1))
    if shift is not None:
        out.add_(shift.view(1, channels, 1, 1))
    return out.view(b, k, channels, size, size)


def normalize(
    crops: torch.Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """``[..., 3, S, S]`` crops in [0, 255] -> ImageNet-normalised."""
    m = torch.tensor(mean, device=crops.device, dtype=crops.dtype).view(3, 1, 1) * 255.0
    s = torch.tensor(std, device=crops.device, dtype=crops.dtype).view(3, 1, 1) * 255.0
    return (crops - m) / s
