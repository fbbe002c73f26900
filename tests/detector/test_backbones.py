"""Backbone registry: stride-32 features, widths, and offline ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detector.backbones import BACKBONES, build_backbone, offline_mobilenet_weights


@pytest.mark.parametrize(("name", "width"), [("mobilenet_v2", 1280), ("resnet18", 512)])
def test_feature_map_is_7x7_at_224(name: str, width: int) -> None:
    net = build_backbone(name).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, width, 7, 7) and net.out_channels == width
    assert BACKBONES[name].out_channels == width


def test_mobilenet_imagenet_weights_come_from_the_offline_file() -> None:
    path = offline_mobilenet_weights()
    assert path is not None and path.name == "mobilenet_v2-b0353104.pth"
    net = build_backbone("mobilenet_v2", "imagenet")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(net.state_dict()["features.0.0.weight"], state["features.0.0.weight"])


def test_local_weights_file_and_mismatch(tmp_path: Path) -> None:
    source = build_backbone("resnet18")
    state = {k.removeprefix("features."): v for k, v in source.state_dict().items()}
    torch.save(state, tmp_path / "r18.pth")
    net = build_backbone("resnet18", tmp_path / "r18.pth")
    assert torch.equal(
        net.state_dict()["features.conv1.weight"], source.state_dict()["features.conv1.weight"]
    )
    with pytest.raises(ValueError, match="do not match"):
        build_backbone("mobilenet_v2", tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg11")
