"""Batched crop-and-resize equals per-image crops; padding never leaks into crops."""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

from detector.batching import collate_images, group_by_size
from detector.crops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_and_resize,
    normalize,
    prepare_pixels,
    resample_views,
    roi_crops,
)
from detector.patches import select_patches
from detector.psm import central_squares
from detector.representation import input_affine


def _images() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(300, 200), (64, 90), (250, 410), (120, 120)]
    return [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8) for h, w in shapes]


def _one(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Reference: crop one unpadded image alone, box by box."""
    out = []
    for box in boxes:
        roi = torch.cat([torch.zeros(1), box.float()]).unsqueeze(0)
        out.append(roi_align(image[None].float(), roi, size, 1.0, -1, aligned=True)[0])
    return torch.stack(out)


def test_collate_pads_with_zeros_and_records_sizes() -> None:
    images = _images()
    pixels, sizes = collate_images(images)
    assert pixels.shape == (4, 3, 300, 410) and pixels.dtype == torch.uint8
    assert sizes.tolist() == [[300, 200], [64, 90], [250, 410], [120, 120]]
    assert torch.equal(pixels[1, :, :64, :90], images[1])
    assert pixels[1, :, 64:].sum() == 0 and pixels[1, :, :, 90:].sum() == 0


def test_batched_crops_equal_per_image_crops() -> None:
    images = _images()
    pixels, sizes = collate_images(images)
    features = torch.rand(4, 8, 7, 7)
    boxes = select_patches(features, sizes, "psm").boxes
    boxes = torch.cat([boxes, central_squares(sizes).unsqueeze(1)], dim=1)  # + the global view
    batched = crop_and_resize(prepare_pixels(pixels, sizes), boxes, 224)
    assert batched.shape == (4, 7, 3, 224, 224)
    for i, image in enumerate(images):
        assert torch.allclose(batched[i], _one(image, boxes[i], 224), atol=1e-3)


def test_integer_box_of_output_size_is_an_exact_copy() -> None:
    image = _images()[2]
    pixels, sizes = collate_images([image, _images()[0]])
    box = torch.tensor([[[100.0, 20.0, 324.0, 244.0]], [[0.0, 0.0, 200.0, 200.0]]])
    crop = crop_and_resize(prepare_pixels(pixels, sizes), box, 224)[0, 0]
    assert torch.equal(crop, image[:, 20:244, 100:324].float())


def test_padding_does_not_leak_at_right_and_bottom_edges() -> None:
    white = torch.full((3, 50, 60), 255, dtype=torch.uint8)
    pixels, sizes = collate_images([white, torch.zeros(3, 200, 300, dtype=torch.uint8)])
    crop = crop_and_resize(prepare_pixels(pixels, sizes), central_squares(sizes)[:, None], 224)
    assert torch.allclose(crop[0], torch.full_like(crop[0], 255.0))


def test_group_by_size_respects_limits() -> None:
    sizes = [(100, 100), (4000, 6000), (110, 90), (120, 100), (3000, 4000)]
    groups = group_by_size(sizes, max_batch=2, max_padded_pixels=20_000_000)
    assert sorted(i for g in groups for i in g) == list(range(5))
    for g in groups:
        h = max(sizes[i][0] for i in g)
        w = max(sizes[i][1] for i in g)
        assert len(g) <= 2 and (len(g) == 1 or len(g) * h * w <= 20_000_000)
    assert groups == [[2, 0], [3], [4], [1]]  # by area; large photos are not batched together


def _boxes(h: int, w: int, k: int = 8) -> torch.Tensor:
    """Every kind of box inside an ``h x w`` image, padded with its central square to ``k``."""
    side = min(h, w)
    square = central_squares(torch.tensor([[h, w]]))[0].tolist()
    candidates = [
        [0.0, 0.0, 224.0, 224.0],  # copy
        [w - 224.0, h - 224.0, float(w), float(h)],  # copy at the bottom-right corner
        [5.0, 7.0, 117.0, 119.0],  # 2x upsampling with margin
        [0.0, 0.0, 112.0, 112.0],  # 2x upsampling touching the top-left edge
        [w - 112.0, h - 112.0, float(w), float(h)],  # ... and the bottom-right edge
        [0.5, 1.25, side - 0.5, side - 0.25],  # non-integer, shrinking or enlarging
        [3.0, 2.0, 3.0 + side // 2, 2.0 + side // 2],  # other integer side
    ]
    boxes = [square] + [
        b for b in candidates if b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h
    ]
    return torch.tensor((boxes + [square] * k)[:k])


def test_resampled_views_equal_roi_align() -> None:
    """The CPU views from uint8 pixels (copies, 2x upsampling, banded passes; shrinking 1x to
    4x and enlarging) equal roi_align on the prepared padded batch; copies are bit-identical."""
    gen = torch.Generator().manual_seed(3)
    images = [*_images(), torch.randint(0, 256, (3, 1030, 700), generator=gen, dtype=torch.uint8)]
    pixels, sizes = collate_images(images)
    boxes = torch.stack([_boxes(int(h), int(w)) for h, w in sizes.tolist()])
    ref = roi_crops(prepare_pixels(pixels, sizes), boxes, 224)
    out = resample_views(pixels, sizes, boxes, 224)
    assert out.shape == ref.shape == (5, 8, 3, 224, 224)
    assert float((out - ref).abs().max()) < 1e-3  # on [0, 255]
    copies = (boxes[..., 2] - boxes[..., 0] == 224) & (boxes[..., 3] - boxes[..., 1] == 224)
    assert int(copies.sum()) >= 4 and torch.equal(out[copies], ref[copies])
    scale, shift = input_affine("rgb", IMAGENET_MEAN, IMAGENET_STD)
    normalized = resample_views(pixels, sizes, boxes, 224, scale, shift)
    assert torch.allclose(normalized, normalize(ref), atol=1e-4, rtol=0)
