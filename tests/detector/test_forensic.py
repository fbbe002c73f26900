"""The forensic local branch: native crops, the small CNN, GLFF with it, its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detector.batching import collate_images
from detector.checkpoint import CheckpointMetadata, load_checkpoint, save_checkpoint
from detector.forensic import FORENSIC_CROP, ForensicNet, native_crops
from detector.model import GLFF, ModelConfig, build_model

FORENSIC = ModelConfig(backbone="mobilenet_v2", local_backbone="forensic")


def _images() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randint(0, 256, (3, 300, 410), dtype=torch.uint8, generator=gen),
        torch.randint(0, 256, (3, 90, 500), dtype=torch.uint8, generator=gen),
    ]


def test_native_crops_copy_pixels_without_resampling() -> None:
    images = _images()
    pixels, sizes = collate_images(images)
    boxes = torch.tensor([[[0.0, 0.0, 224.0, 224.0], [300.0, 180.0, 412.0, 292.0]]] * 2)
    crops = native_crops(pixels, sizes, boxes)
    assert crops.shape == (2, 2, 3, FORENSIC_CROP, FORENSIC_CROP)
    # box 0 of image 0: centre (112, 112) -> start (56, 56), even, inside the image
    assert torch.equal(crops[0, 0].to(torch.uint8), images[0][:, 56:168, 56:168])
    # box 1 of image 0 reaches the right edge: moved inside, start stays even
    x0 = (410 - FORENSIC_CROP) - (410 - FORENSIC_CROP) % 2
    y0 = 236 - 56
    assert torch.equal(crops[0, 1].to(torch.uint8), images[0][:, y0 : y0 + 112, x0 : x0 + 112])
    # image 1 is only 90 px high: zero-padded below its rows
    assert torch.equal(crops[1, 0, :, 90:], torch.zeros(3, FORENSIC_CROP - 90, FORENSIC_CROP))


def test_forensic_net_sees_residuals_only() -> None:
    net = ForensicNet(8).eval()
    flat = torch.full((2, 3, 32, 32), 77.0)
    with torch.no_grad():
        out = net(flat)
        shifted = net(flat + 50.0)  # a constant image has zero residual, whatever its level
    assert out.shape == (2, 32, 8, 8)
    assert torch.allclose(out, shifted)


def test_glff_with_forensic_branch_gives_six_patches_and_gradients() -> None:
    torch.manual_seed(0)
    model = build_model(FORENSIC)
    assert isinstance(model, GLFF) and model.forensic is not None
    pixels, sizes = collate_images(_images())
    out = model(pixels, sizes)
    assert out.logits.shape == (2,) and out.boxes.shape == (2, 6, 4)
    assert out.attention.shape == (2, 7)
    out.logits.sum().backward()
    first = model.forensic.features[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_forensic_checkpoint_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(FORENSIC).eval()
    path = tmp_path / "forensic.safetensors"
    save_checkpoint(path, model, CheckpointMetadata(config=FORENSIC, threshold=0.3))
    loaded, meta = load_checkpoint(path)
    pixels, sizes = collate_images(_images())
    with torch.no_grad():
        assert torch.allclose(loaded(pixels, sizes).logits, model(pixels, sizes).logits, atol=1e-5)
    assert meta.config.local_backbone == "forensic"


def test_unknown_local_branch_is_refused() -> None:
    with pytest.raises(ValueError, match="local_backbone"):
        ModelConfig(local_backbone="tiny")  # type: ignore[arg-type]
