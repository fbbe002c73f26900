"""Batching images of different sizes: a zero-padded ``uint8`` tensor plus the true sizes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["collate_images", "group_by_size"]


def collate_images(
    images: Sequence[torch.Tensor], zero_padding: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``uint8 [3, h_i, w_i]`` images into one zero-padded batch.

    ``zero_padding=False`` leaves the padding unwritten (arbitrary values), for consumers that
    never read past each image's size (the model's CPU views of RGB inputs).

    Returns:
        pixels: ``uint8 [B, 3, Hmax, Wmax]``; image ``i`` occupies ``[:, :h_i, :w_i]``.
        sizes: ``int64 [B, 2]`` with rows ``(h_i, w_i)``.
    """
    if not images:
        raise ValueError("collate_images needs at least one image")
    for image in images:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected [3, H, W] images, got {tuple(image.shape)}")
    h_max = max(int(image.shape[1]) for image in images)
    w_max = max(int(image.shape[2]) for image in images)
    pixels = images[0].new_empty((len(images), 3, h_max, w_max))
    for i, image in enumerate(images):
        h, w = int(image.shape[1]), int(image.shape[2])
        pixels[i, :, :h, :w] = image
        if zero_padding:
            pixels[i, :, h:] = 0
            pixels[i, :, :h, w:] = 0
    sizes = torch.tensor([[int(im.shape[1]), int(im.shape[2])] for im in images], dtype=torch.int64)
    return pixels, sizes


def group_by_size(
    sizes: Sequence[tuple[int, int]], max_batch: int, max_padded_pixels: int
) -> list[list[int]]:
    """Split image indices into batches of similar size.

    Images are sorted by area so that padding stays small; a group closes when it holds
    ``max_batch`` images or when its padded size ``n * Hmax * Wmax`` would exceed
    ``max_padded_pixels`` (a single image larger than that forms its own group).
    """
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i][0] * sizes[i][1], sizes[i]))
    groups: list[list[int]] = []
    current: list[int] = []
    h_max = w_max = 0
    for index in order:
        h, w = sizes[index]
        new_h, new_w = max(h_max, h), max(w_max, w)
        if current and (
            len(current) >= max_batch or (len(current) + 1) * new_h * new_w > max_padded_pixels
        ):
            groups.append(current)
            current, new_h, new_w = [], h, w
        current.append(index)
        h_max, w_max = new_h, new_w
    if current:
        groups.append(current)
    return groups
