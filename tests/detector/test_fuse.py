"""Inference copies: folded batch norm gives the same outputs and never touches the model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from PIL import Image
from torch import nn

from detector.batching import collate_images
from detector.checkpoint import CheckpointMetadata
from detector.decode import decode_image
from detector.engine import Detector
from detector.fuse import OnnxBackbone, fold_batchnorm, inference_copy
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
def test_engine_scores_match_the_reference_and_model_unchanged(runtime: str) -> None:
    """Parity with the unoptimised engine (``runtime="reference"``: unfolded backbone, every
    view by roi_align on the float batch) on images that shrink 1x-3x and enlarge."""
    model = _trained_like()
    model.train()
    before = _state(model)
    meta = CheckpointMetadata(config=model.config)
    shapes = ((240, 320), (150, 180), (520, 470))
    images = [decode_image(Image.fromarray(random_array(h, w, seed=h))) for h, w in shapes]
    today = Detector(model, meta, device="cpu", runtime="reference").predict(images)
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
    assert not model.reference_crops


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(
            arch="cnn_aug", backbone="mobilenet_v2", patch_strategy="none", input_repr="npr"
        ),
        ModelConfig(backbone="mobilenet_v2", patch_strategy="rsz448", input_repr="both"),
    ],
)
def test_views_from_uint8_match_the_reference_crops(config: ModelConfig) -> None:
    """The CPU views (float residual planes, 6 channels, rsz448 boxes) give the model outputs of
    roi_align crops."""
    torch.manual_seed(2)
    model = build_model(config).eval()
    images = [
        torch.from_numpy(random_array(h, w, seed=h)).permute(2, 0, 1)
        for h, w in ((233, 301), (470, 390))
    ]
    pixels, sizes = collate_images(images)
    with torch.inference_mode():
        fast = model(pixels, sizes)
        model.reference_crops = True
        ref = model(pixels, sizes)
    assert torch.allclose(torch.sigmoid(fast.logits), torch.sigmoid(ref.logits), atol=1e-4, rtol=0)
    assert torch.equal(fast.boxes, ref.boxes)


def test_inference_copy_rejects_unknown_runtime() -> None:
    with pytest.raises(ValueError, match="runtime"):
        inference_copy(nn.Identity(), "tensorrt")


def test_auto_runtime_is_onnxruntime_on_the_cpu_when_installed() -> None:
    model = _trained_like()
    meta = CheckpointMetadata(config=model.config)
    detector = Detector(model, meta, device="cpu", precision="fp32")
    assert detector.runtime == "onnxruntime"  # the onnx extra is part of `make install`
    assert Detector(model, meta, device="cpu", runtime="torch").runtime == "torch"


def test_forensic_glff_scores_match_across_runtimes() -> None:
    torch.manual_seed(2)
    model = build_model(ModelConfig(backbone="mobilenet_v2", local_backbone="forensic")).eval()
    meta = CheckpointMetadata(config=model.config)
    images = [decode_image(Image.fromarray(random_array(h, w, seed=h))) for h, w in ((240, 330),)]
    ref = Detector(model, meta, device="cpu", runtime="reference").predict(images)
    auto = Detector(model, meta, device="cpu").predict(images)
    assert abs(ref[0].score - auto[0].score) < 1e-4
    assert [p.box for p in ref[0].patches] == [p.box for p in auto[0].patches]


def _fold_five_times(model: GLFF) -> nn.Module:
    for _ in range(5):
        folded = fold_batchnorm(model.backbone)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    return folded


def _export_twice(model: GLFF) -> nn.Module:
    for _ in range(2):
        copied = inference_copy(model, "onnxruntime")
    assert any(isinstance(m, OnnxBackbone) for m in copied.modules())
    return copied


@pytest.mark.parametrize("prepare", [_fold_five_times, _export_twice], ids=["fold", "onnx"])
def test_preparing_a_model_on_one_thread_never_breaks_a_model_scoring_on_another(
    prepare: Callable[[GLFF], nn.Module],
) -> None:
    """Issue 19: a hot reload prepares the new model (folds its batch norms; on CPUs the default
    ``auto`` runtime also exports it to ONNX) while the old one scores on the worker thread.
    torch.fx tracing patched ``nn.Module.__call__`` process-wide, so the scoring thread failed
    with ``NameError('module is not installed as a submodule')``."""
    import threading

    serving, incoming = _trained_like(), _trained_like()
    x = torch.randn(1, 3, 64, 64)
    errors: list[BaseException] = []
    done = threading.Event()

    def score() -> None:
        while not done.is_set():
            try:
                with torch.inference_mode():
                    serving.backbone(x)
            except BaseException as exc:
                errors.append(exc)
                return

    worker = threading.Thread(target=score)
    worker.start()
    try:
        prepare(incoming)
    finally:
        done.set()
        worker.join(30)
    assert errors == []
