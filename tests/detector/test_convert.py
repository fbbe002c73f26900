"""Converter from the authors' state-dict names, on a synthetic state dict built here."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from detector import CheckpointError
from detector.checkpoint import load_checkpoint, read_metadata
from detector.cli import main
from detector.convert import convert_authors_state_dict, convert_file
from detector.model import GLFF, ModelConfig


def _authors_state(width: int = 512, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """What the reference code's model would save: ResNet + fc1 + transformer encoder + fc."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    layer = nn.TransformerEncoderLayer(128, 4, 128, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
    parts = {
        "resnet.": resnet,
        "fc1.": nn.Linear(width, 128),
        "transformer_encoder.": encoder,
        "fc.": nn.Linear(128, 1),
    }
    return {
        prefix + name + key: value.clone()
        for name, module in parts.items()
        for key, value in module.state_dict().items()
    }


def test_mapping_of_names() -> None:
    ours = convert_authors_state_dict(_authors_state())
    assert "backbone.features.layer4.1.bn2.running_var" in ours
    assert "embed.weight" in ours and "head.bias" in ours
    assert "fusion.layers.2.self_attn.in_proj_weight" in ours
    assert not any(k.startswith("backbone.features.fc") for k in ours)  # ImageNet head dropped


def test_convert_file_round_trip(tmp_path: Path) -> None:
    state = _authors_state()
    src = tmp_path / "authors.pth"
    torch.save(state, src)
    sha = convert_file(src, tmp_path / "ours.safetensors", ModelConfig(backbone="resnet18"))
    model, meta = load_checkpoint(tmp_path / "ours.safetensors")
    assert isinstance(model, GLFF) and len(sha) == 64
    p = "module."
    pairs = {
        "backbone.features.layer3.0.downsample.0.weight": p + "resnet.layer3.0.downsample.0.weight",
        "embed.weight": p + "fc1.weight",
        "fusion.layers.1.linear2.bias": p + "transformer_encoder.layers.1.linear2.bias",
        "head.weight": p + "fc.weight",
    }
    own = model.state_dict()
    for ours, theirs in pairs.items():
        assert torch.equal(own[ours], state[theirs]), ours
    assert meta.training["converted_from"] == "authors.pth"
    assert read_metadata(tmp_path / "ours.safetensors")["backbone"] == "resnet18"


def test_cli_convert_with_rename(tmp_path: Path) -> None:
    state = {
        (k.replace("module.fc.", "classifier.") if k.startswith("module.fc.") else k): v
        for k, v in _authors_state().items()
    }
    src = tmp_path / "a.pth"
    torch.save({"model": state}, src)
    out = tmp_path / "o.safetensors"
    args = ["convert", str(src), "--out", str(out), "--backbone", "resnet18"]
    assert main(args) == 2  # "classifier.*" is unknown without a rename
    assert main([*args, "--rename", "classifier.=fc."]) == 0
    assert out.is_file()


def test_unknown_and_wrong_shapes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="unknown"):
        convert_authors_state_dict({"mystery.weight": torch.zeros(1)})
    src = tmp_path / "r18.pth"
    torch.save(_authors_state(), src)
    with pytest.raises(CheckpointError, match="do not fit"):
        convert_file(src, tmp_path / "x.safetensors", ModelConfig(backbone="mobilenet_v2"))


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("executed",))


def test_converter_reads_with_weights_only(tmp_path: Path) -> None:
    src = tmp_path / "evil.pth"
    src.write_bytes(pickle.dumps({"x": _Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="weights_only"):
        convert_file(src, tmp_path / "x.safetensors")
