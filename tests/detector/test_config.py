"""The model config: typed choices checked on load, one name for the baseline and its aliases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
import torch
from safetensors.torch import save_file

from detector import CheckpointError
from detector.backbones import BACKBONES, BackboneName
from detector.checkpoint import load_checkpoint, read_metadata
from detector.cli import build_parser
from detector.model import ARCH_ALIASES, GlobalOnly, ModelConfig
from detector.representation import INPUT_REPRS
from detector.training.config import TrainConfig

CHECKPOINTS = Path(__file__).resolve().parents[2] / "detector" / "checkpoints"
# The shipped files as they were written (before the baseline had one name) must load as is.
SHIPPED = {
    "demo-mobilenet_v2.safetensors": ("cnn_aug", "global_only"),
    "demo-glff-mobilenet_v2.safetensors": ("glff", "glff"),
    "glff-forensic-mobilenet_v2.safetensors": ("glff", "glff"),
}


def test_the_literal_types_are_the_registries() -> None:
    shipped = {name for name, spec in BACKBONES.items() if spec.torchvision_weights}  # not tests'
    assert set(get_args(BackboneName)) == shipped
    assert INPUT_REPRS == ("rgb", "npr", "both")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoints_load_with_their_stored_names(name: str) -> None:
    path = CHECKPOINTS / name
    stored, canonical = SHIPPED[name]
    assert read_metadata(path)["architecture"] == stored  # the file is as it was written
    model, meta = load_checkpoint(path)
    assert meta.config.arch == canonical
    assert isinstance(model, GlobalOnly) == (canonical == "global_only")


@pytest.mark.parametrize("old", sorted(ARCH_ALIASES))
def test_old_baseline_names_are_aliases(old: str) -> None:
    assert ARCH_ALIASES[old] == "global_only"
    config = ModelConfig(arch=old, patch_strategy="none")  # type: ignore[arg-type]
    assert config.arch == "global_only" and config.to_dict()["arch"] == "global_only"
    assert ModelConfig.from_dict({"arch": old, "patch_strategy": "none"}) == config
    cfg = TrainConfig(train="t", val="v", out="o", arch=old)  # type: ignore[arg-type]
    assert cfg.arch == "global_only" and cfg.model_config().patch_strategy == "none"
    init = build_parser().parse_args(["init-checkpoint", "--out", "x", "--arch", old])
    assert init.arch == "global_only"
    train = build_parser().parse_args(["train", "--out", "x", "--arch", old])
    assert train.arch == "global_only"


def test_an_unknown_arch_on_the_command_line_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["init-checkpoint", "--out", "x", "--arch", "vit"])
    assert "--arch" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("arch", "transformer"),
        ("backbone", "vit_b16"),
        ("patch_strategy", "grid"),
        ("local_backbone", "twin"),
        ("suppression", "nms"),
        ("input_repr", "hsv"),
    ],
)
def test_an_unknown_value_in_checkpoint_metadata_is_refused_by_name(
    tmp_path: Path, field: str, value: str
) -> None:
    src = CHECKPOINTS / "demo-glff-mobilenet_v2.safetensors"
    header = read_metadata(src)
    header["model"][field] = value
    path = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"synthscan": json.dumps(header)})
    with pytest.raises(CheckpointError, match=rf"{field} '{value}' not in \[") as info:
        load_checkpoint(path)
    assert "invalid checkpoint metadata" in str(info.value)
