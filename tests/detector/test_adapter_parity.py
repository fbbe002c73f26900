"""The adapter path is the model's own forward path: with no adapter it scores like the engine,
for every input representation and both architectures."""

from __future__ import annotations

import pytest
import torch

from detector import Detector
from detector.adapters.multi import forward_with_adapters
from detector.adapters.tail import check_adaptable, default_split
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
