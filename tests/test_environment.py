"""The environment the project needs: a torch build whose torchvision ops run on CPU."""

from __future__ import annotations

import torch
import torchvision
from torchvision.ops import nms, roi_align


def test_torchvision_nms_runs_on_cpu() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_torchvision_roi_align_runs_on_cpu() -> None:
    image = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    boxes = torch.tensor([[0, 0, 0, 4, 4]], dtype=torch.float32)
    out = roi_align(image, boxes, output_size=(2, 2), aligned=True)
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out.mean(), image.mean())


def test_versions_are_a_matching_pair() -> None:
    torch_minor = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    vision_minor = tuple(int(p) for p in torchvision.__version__.split("+")[0].split(".")[:2])
    assert torch_minor >= (2, 2)
    assert vision_minor >= (0, 17)
