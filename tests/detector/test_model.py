"""GLFF model: parameter count, output shapes per variant, padding invariance, gradients."""

from __future__ import annotations

import pytest
import torch

from detector.batching import collate_images
from detector.model import GLFF, ModelConfig, build_model, count_parameters


def _count(config: ModelConfig) -> int:
    with torch.device("meta"):  # no memory, no initialisation cost
        return count_parameters(build_model(config))


def test_resnet50_parameter_count_matches_the_authors() -> None:
    # ResNet-50 trunk 23,508,032 + Linear(2048,128) 262,272 + AFFM 298,752 + head 129
    assert _count(ModelConfig(backbone="resnet50")) == 24_069_185


def test_variant_parameter_counts() -> None:
    shared = _count(ModelConfig(backbone="resnet18"))
    separate = _count(ModelConfig(backbone="resnet18", local_backbone="separate"))
    assert separate - shared == 11_176_512 + 512 * 128 + 128  # trunk + local embedding
    assert _count(ModelConfig(arch="global_only", patch_strategy="none")) == 23_508_032 + 2049


def _batch() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
        for h, w in [(240, 320), (90, 60)]
    ]
    pixels, sizes = collate_images(images)
    return pixels, sizes, images


@pytest.mark.parametrize(("strategy", "k"), [("psm", 6), ("random", 6), ("rsz448", 5)])
def test_output_shapes(strategy: str, k: int) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="mobilenet_v2", patch_strategy=strategy)).eval()
    pixels, sizes, _ = _batch()
    with torch.no_grad():
        out = model(pixels, sizes)
    assert out.logits.shape == (2,)
    assert out.boxes.shape == (2, k, 4) and out.windows.shape == (2, k)
    assert out.activations.shape == (2, k) and out.attention.shape == (2, k + 1)
    assert torch.allclose(out.attention.sum(1), torch.ones(2), atol=1e-5)


def test_global_only_baseline() -> None:
    config = ModelConfig(arch="global_only", backbone="mobilenet_v2", patch_strategy="none")
    model = build_model(config)
    pixels, sizes, _ = _batch()
    with torch.no_grad():
        out = model.eval()(pixels, sizes)
    assert out.logits.shape == (2,) and out.boxes.shape == (2, 0, 4)
    assert out.attention.tolist() == [[1.0], [1.0]]


def test_padding_does_not_change_the_result(small_model: GLFF) -> None:
    pixels, sizes, images = _batch()
    with torch.no_grad():
        together = small_model(pixels, sizes)
        alone = small_model(images[1][None], sizes[1:])
    assert torch.allclose(together.logits[1], alone.logits[0], atol=1e-4)
    assert torch.equal(together.boxes[1], alone.boxes[0])


def test_gradients_reach_backbone_embedding_and_fusion() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="mobilenet_v2")).train()
    pixels, sizes, _ = _batch()
    out = model(pixels, sizes)
    out.logits.sum().backward()
    assert not out.boxes.requires_grad
    for name in ("backbone.features.0.0.weight", "embed.weight", "fusion.layers.0.linear1.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="backbone"):
        ModelConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="patch_strategy"):
        ModelConfig(patch_strategy="none")
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"colour": "red"})
