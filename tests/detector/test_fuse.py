"""Inference copies: folded batch norm gives the same outputs and never touches the model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

from detector.checkpoint import CheckpointMetadata
from detector.decode import decode_image
from detector.engine import Detector
from detector.fuse import fold_batchnorm, inference_copy
from detector.model import GLFF, ModelConfig, build_model
from tests.detector.imaging import random_array


def _trained_like(backbone: str = "mobilenet_v2") -> GLFF:
    """A random model whose batch norms have non-trivial statistics (as after training)."""
    torch.manual_seed(1)
    model = build_model(ModelConfig(backbone=backbone))
    assert isinstance(model, GLFF)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_folded_backbone_matches_and_has_no_batchnorm() -> None:
    model = _trained_like()
    x = torch.randn(2, 3, 224, 224)
    folded = fold_batchnorm(model.backbone)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    with torch.inference_mode():
        ref, out = model.backbone(x), folded(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_engine_scores_match_today_and_model_unchanged(runtime: str) -> None:
    model = _trained_like()
    model.train()
    before = _state(model)
    meta = CheckpointMetadata(config=model.config)
    shapes = ((240, 320), (300, 200))
    images = [decode_image(Image.fromarray(random_array(h, w, seed=h))) for h, w in shapes]
    today = Detector(model, meta, device="cpu", runtime="eager").predict(images)
    fast = Detector(model, meta, device="cpu", runtime=runtime).predict(images)
    for a, b in zip(today, fast, strict=True):
        assert abs(a.score - b.score) < 1e-4  # stated tolerance on P(synthetic)
        # same patches (their attention ranks may swap where two weights are within 1e-4)
        assert sorted((q.box, q.window) for q in a.patches) == sorted(
            (q.box, q.window) for q in b.patches
        )
        assert (
            max(abs(p.attention - q.attention) for p, q in zip(a.patches, b.patches, strict=True))
            < 1e-2
        )
    # the training model is untouched: still in train mode, same weights and statistics
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_inference_copy_rejects_unknown_runtime() -> None:
    with pytest.raises(ValueError, match="runtime"):
        inference_copy(nn.Identity(), "tensorrt")
