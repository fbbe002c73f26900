"""Batched crop-and-resize equals per-image crops; padding never leaks into crops."""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

from detector.batching import collate_images, group_by_size
from detector.crops import crop_and_resize, prepare_pixels
from detector.patches import select_patches
from detector.psm import central_squares


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


def test_cpu_fast_paths_equal_roi_align() -> None:
    """Integer boxes of side S (copy) and S/2 (2x upsampling) match roi_align; others use it."""
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 300, 400, generator=gen) * 255
    boxes = torch.tensor(
        [
            [[10.0, 20.0, 234.0, 244.0], [0.0, 0.0, 224.0, 224.0], [176.0, 76.0, 400.0, 300.0]],
            [[1.0, 1.0, 113.0, 113.0], [287.0, 187.0, 399.0, 299.0], [0.0, 5.0, 112.0, 117.0]],
            [[50.5, 3.0, 162.5, 115.0], [0.0, 0.0, 300.0, 300.0], [30.0, 40.0, 130.0, 90.0]],
        ]
    )
    for row in boxes:  # copy boxes, upsampled boxes (one touching the border), other boxes
        ref = torch.stack([_one(image, row, 224) for image in images])
        out = crop_and_resize(images, row.expand(2, 3, 4), 224)
        assert torch.allclose(out, ref, atol=1e-3, rtol=0)
    exact = crop_and_resize(images, boxes[0].expand(2, 3, 4), 224)
    assert torch.equal(exact, torch.stack([_one(image, boxes[0], 224) for image in images]))
