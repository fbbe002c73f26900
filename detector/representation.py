"""Backbone input representations: RGB, an NPR-style upsampling residual, or both.

The residual (after Tan et al., CVPR 2024, "NPR") is ``x - up(down(x))`` with nearest-neighbour
2x down- and upsampling: inside every aligned 2x2 block, each pixel minus the block's top-left
pixel. It exposes the relation between neighbouring pixels that a generator's final upsampling
leaves, and it is computed on the ORIGINAL-resolution image, before the global view and the
patches are cropped from it, so native-resolution patches see native residuals.

``rgb`` is the paper's input. ``npr`` feeds the residual (scaled) instead of the pixels;
``both`` stacks RGB and residual into 6 channels (the backbone's first convolution is widened,
its pretrained filters copied to the residual channels).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from detector.crops import normalize

InputRepr = Literal["rgb", "npr", "both"]
INPUT_REPRS: tuple[InputRepr, ...] = get_args(InputRepr)
NPR_GAIN = 4.0
"""Residual scale after dividing by the ImageNet std: puts typical residuals near unit size."""


def npr_residual(images: torch.Tensor) -> torch.Tensor:
    """``float [B, C, H, W]`` -> ``x - up(down(x))`` (nearest, factor 2), same shape."""
    h, w = images.shape[-2:]
    low = images[..., ::2, ::2]
    up = low.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :h, :w]
    return images - up


def represent(pixels: torch.Tensor, input_repr: str) -> torch.Tensor:
    """Padded original-resolution ``[B, 3, H, W]`` pixels in [0, 255] -> the planes the views
    are cut from (``rgb``: the pixels unchanged).

    Apply it before :func:`detector.crops.prepare_pixels`, which then extends each image's
    edge into the padding: the residual of every image does not depend on its batch.
    """
    if input_repr == "rgb":
        return pixels
    images = pixels.float()
    residual = npr_residual(images)
    if input_repr == "npr":
        return residual
    if input_repr == "both":
        return torch.cat([images, residual], dim=1)
    raise ValueError(f"input_repr {input_repr!r} not in {INPUT_REPRS}")


def normalize_input(
    crops: torch.Tensor,
    input_repr: str,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> torch.Tensor:
    """Crops of :func:`represent`'s planes -> backbone input (RGB ImageNet-normalised).

    Same as ``crops * scale + shift`` with :func:`input_affine`.
    """
    if input_repr == "rgb":
        return normalize(crops, mean, std)
    s = torch.tensor(std, device=crops.device, dtype=crops.dtype).view(3, 1, 1) * 255.0
    if input_repr == "npr":
        return crops * (NPR_GAIN / s)
    rgb, residual = crops[..., :3, :, :], crops[..., 3:, :, :]
    return torch.cat([normalize(rgb, mean, std), residual * (NPR_GAIN / s)], dim=-3)


def input_affine(
    input_repr: str, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`normalize_input` as ``crops * scale + shift`` with per-channel ``[C]`` tensors."""
    s = torch.tensor(std, dtype=torch.float64) * 255.0
    rgb_scale, rgb_shift = 1.0 / s, -torch.tensor(mean, dtype=torch.float64) * 255.0 / s
    npr_scale, npr_shift = NPR_GAIN / s, torch.zeros(3, dtype=torch.float64)
    if input_repr == "rgb":
        scale, shift = rgb_scale, rgb_shift
    elif input_repr == "npr":
        scale, shift = npr_scale, npr_shift
    elif input_repr == "both":
        scale, shift = torch.cat([rgb_scale, npr_scale]), torch.cat([rgb_shift, npr_shift])
    else:
        raise ValueError(f"input_repr {input_repr!r} not in {INPUT_REPRS}")
    return scale.float(), shift.float()


def adapt_first_conv(trunk: nn.Module, input_repr: str) -> None:
    """For ``both``: widen the trunk's first convolution to 6 input channels (in place)."""
    if input_repr != "both":
        return
    for name, module in trunk.named_modules():
        if isinstance(module, nn.Conv2d):
            wide = nn.Conv2d(
                6,
                module.out_channels,
                module.kernel_size,  # type: ignore[arg-type]
                module.stride,  # type: ignore[arg-type]
                module.padding,  # type: ignore[arg-type]
                bias=module.bias is not None,
            )
            with torch.no_grad():
                wide.weight.copy_(torch.cat([module.weight, module.weight], dim=1) / 2)
                if module.bias is not None and wide.bias is not None:
                    wide.bias.copy_(module.bias)
            parent = trunk.get_submodule(name.rsplit(".", 1)[0]) if "." in name else trunk
            setattr(parent, name.rsplit(".", 1)[-1], wide)
            return
    raise ValueError("backbone has no convolution to widen")
