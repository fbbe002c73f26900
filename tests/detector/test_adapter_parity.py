"""The adapter path is the model's own forward path: with no adapter it scores like the engine,
for every input representation and both architectures."""

from __future__ import annotations

import pytest
import torch

from detector import CheckpointError, Detector
from detector.adapters.file import Adapter, AdapterMetadata
from detector.adapters.multi import forward_with_adapters
from detector.adapters.tail import Tail, check_adaptable, default_split
from detector.batching import collate_images
from detector.checkpoint import CheckpointMetadata
from detector.decode import DecodedImage
from detector.model import ModelConfig, build_model
from tests.detector.imaging import random_array

CASES = [(arch, rep) for arch in ("glff", "global_only") for rep in ("rgb", "npr", "both")]


def _model(arch: str, input_repr: str) -> torch.nn.Module:
    patches = "psm" if arch == "glff" else "none"
    cfg = ModelConfig(
        arch=arch,  # type: ignore[arg-type]
        backbone="mobilenet_v2",
        patch_strategy=patches,  # type: ignore[arg-type]
        input_repr=input_repr,  # type: ignore[arg-type]
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    # a random trunk's eval-mode batch norm washes the image out (every image gets the same
    # score); statistics of a few images make the scores depend on the input
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.momentum = None
            bn.reset_running_stats()
    pixels, sizes = collate_images([_image(100 + s) for s in range(4)])
    with torch.no_grad():
        model.train()(pixels, sizes)
    return model.eval()


def _image(seed: int, h: int = 150, w: int = 190) -> torch.Tensor:
    return torch.from_numpy(random_array(h, w, seed=seed)).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize(("arch", "input_repr"), CASES, ids=[f"{a}-{r}" for a, r in CASES])
def test_adapter_free_scores_through_the_adapter_path_equal_the_engines(
    arch: str, input_repr: str
) -> None:
    model = _model(arch, input_repr)
    meta = CheckpointMetadata(name="parity", version="1", threshold=0.5, config=model.config)
    engine = Detector(model, meta, device="cpu", runtime="eager")
    images = [_image(s) for s in range(3)]
    decoded = [DecodedImage(im, 190, 150, "PNG", "RGB", "") for im in images]
    expected = torch.tensor([p.score for p in engine.predict(decoded)])
    assert float(expected.max() - expected.min()) > 1e-3  # the scores depend on the image
    base = check_adaptable(model)
    pixels, sizes = collate_images(images)
    out, extra = forward_with_adapters(base, default_split(base), [], pixels, sizes)
    assert extra.shape == (3, 0)
    torch.testing.assert_close(torch.sigmoid(out.logits), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("arch", "input_repr"), [("glff", "npr"), ("global_only", "both")])
def test_a_detector_with_an_adapter_keeps_the_base_score(arch: str, input_repr: str) -> None:
    model = _model(arch, input_repr)
    meta = CheckpointMetadata(name="parity", version="1", threshold=0.5, config=model.config)
    base = check_adaptable(model)
    split = default_split(base)
    tail = Tail.of(base, split, copy_weights=True)
    torch.nn.init.normal_(tail.head.weight)  # an adapter that disagrees with the base
    adapter = Adapter("g", tail.eval(), 0.5, "0" * 64, AdapterMetadata("g", "full", split, ""))
    decoded = [DecodedImage(_image(s), 190, 150, "PNG", "RGB", "") for s in range(2)]
    plain = Detector(model, meta, device="cpu", runtime="eager").predict(decoded)
    both = Detector(model, meta, device="cpu", adapters=[adapter]).predict(decoded)
    for p, q in zip(plain, both, strict=True):
        assert q.attribution is not None
        base_score, adapter_score = q.attribution.scores[0].score, q.attribution.scores[1].score
        assert abs(base_score - p.score) < 1e-5
        assert abs(adapter_score - base_score) > 1e-4


@pytest.mark.parametrize(
    "changes",
    [{"patch_strategy": "random"}, {"patch_strategy": "rsz448"}, {"local_backbone": "separate"}],
)
def test_models_the_adapter_tail_cannot_split_are_refused(changes: dict[str, str]) -> None:
    model = build_model(ModelConfig(backbone="mobilenet_v2", **changes))  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="adapters need"):
        check_adaptable(model)
