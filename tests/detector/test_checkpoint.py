"""Checkpoints: safetensors round trip, metadata, refusal of mismatches and pickles."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from detector import CheckpointError, Detector
from detector.batching import collate_images
from detector.checkpoint import (
    CheckpointMetadata,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from detector.model import GLFF, ModelConfig

REQUIRED = {
    "architecture",
    "backbone",
    "patch_strategy",
    "threshold",
    "input_size",
    "normalization",
    "training_data",
    "training",
    "version",
    "created_at",
}


def test_round_trip_restores_weights_and_metadata(
    small_model: GLFF, small_checkpoint: Path
) -> None:
    model, meta = load_checkpoint(small_checkpoint)
    assert isinstance(model, GLFF) and not model.training
    assert meta.config == small_model.config
    assert (meta.name, meta.version, meta.threshold) == ("test-small", "1.2.3", 0.4)
    for key, value in small_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    pixels, sizes = collate_images([torch.randint(0, 256, (3, 100, 140), dtype=torch.uint8)])
    with torch.no_grad():
        assert torch.equal(model(pixels, sizes).logits, small_model(pixels, sizes).logits)


def test_header_metadata_fields(small_checkpoint: Path) -> None:
    data = read_metadata(small_checkpoint)
    assert set(data) >= REQUIRED
    assert data["architecture"] == "glff" and data["backbone"] == "mobilenet_v2"
    assert data["input_size"] == 224 and data["normalization"]["mean"][0] == 0.485
    assert data["created_at"].endswith("Z")


def test_weights_sha256_is_the_file_digest(small_checkpoint: Path) -> None:
    det = Detector.from_checkpoint(small_checkpoint, device="cpu")
    assert det.info.weights_sha256 == hashlib.sha256(small_checkpoint.read_bytes()).hexdigest()


def _rewrite(src: Path, dst: Path, edit: Mapping[str, object]) -> Path:
    model, meta = load_checkpoint(src)
    header = {**meta.to_json(), **edit}
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(dst), metadata={"synthscan": json.dumps(header)})
    return dst


@pytest.mark.parametrize(
    "edit",
    [
        {"backbone": "resnet50"},
        {"architecture": "global_only"},
        {"patch_strategy": "random"},
        {"input_size": 448},
        {"threshold": 1.5},
        {"format": "something-else"},
        {"format_version": 99},
        {"preprocessing_version": "0"},
    ],
)
def test_mismatched_metadata_is_refused(
    small_checkpoint: Path, tmp_path: Path, edit: dict[str, object]
) -> None:
    with pytest.raises(CheckpointError):
        load_checkpoint(_rewrite(small_checkpoint, tmp_path / "x.safetensors", edit))


def test_tensors_that_do_not_fit_the_claimed_model_are_refused(
    small_checkpoint: Path, tmp_path: Path
) -> None:
    other = ModelConfig(backbone="resnet18").to_dict()
    edit = {"model": other, "backbone": "resnet18"}
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(_rewrite(small_checkpoint, tmp_path / "x.safetensors", edit))


def test_expected_config_is_enforced(small_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(small_checkpoint, expected=ModelConfig(backbone="mobilenet_v2", depth=2))


def test_plain_safetensors_without_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="metadata"):
        load_checkpoint(path)


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (self.marker, "pwned"))  # type: ignore[return-value]


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_pickles_are_never_loaded(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps({"w": _Boom(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        Detector.from_checkpoint(path, device="cpu")
    assert not marker.exists()


def test_torch_save_zip_is_refused(small_model: GLFF, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"  # a torch.save zip with a misleading name
    torch.save(small_model.state_dict(), path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_save_sets_config_from_model(small_model: GLFF, tmp_path: Path) -> None:
    meta = CheckpointMetadata(config=ModelConfig(backbone="resnet50"), training={"lr": 1e-4})
    save_checkpoint(tmp_path / "m.safetensors", small_model, meta)
    data = read_metadata(tmp_path / "m.safetensors")
    assert data["backbone"] == "mobilenet_v2" and data["training"] == {"lr": 1e-4}


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(backbone="mobilenet_v2", patch_strategy="rsz448", local_backbone="separate"),
        ModelConfig(arch="global_only", backbone="mobilenet_v2", patch_strategy="none"),
    ],
)
def test_variants_round_trip(config: ModelConfig, tmp_path: Path) -> None:
    from detector.model import build_model

    model = build_model(config).eval()
    save_checkpoint(tmp_path / "v.safetensors", model, CheckpointMetadata(name="v"))
    loaded, meta = load_checkpoint(tmp_path / "v.safetensors")
    assert meta.config == config and type(loaded) is type(model)
    pixels, sizes = collate_images([torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)])
    with torch.no_grad():
        assert torch.equal(loaded(pixels, sizes).logits, model(pixels, sizes).logits)


def _header_length(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


@pytest.mark.parametrize(
    ("prefix", "modulus"), [(b"\x80", 1 << 8), (b"PK", 1 << 16)], ids=["0x80", "PK"]
)
def test_header_length_that_looks_like_pickle_or_zip_magic_is_loaded(
    small_model: GLFF, tmp_path: Path, prefix: bytes, modulus: int
) -> None:
    # The header length's low bytes depend on the metadata (about 1 checkpoint in 256 starts
    # with 0x80): pad the metadata so the file starts with the pickle / zip magic.
    def save(pad: int) -> Path:
        meta = CheckpointMetadata(
            name="magic", created_at="2026-01-01T00:00:00Z", training={"pad": "x" * pad}
        )
        path = tmp_path / f"pad{pad}.safetensors"
        save_checkpoint(path, small_model, meta)
        return path

    base = save(0)
    unpadded = len(base.read_bytes()[8 : 8 + _header_length(base)].rstrip(b" "))
    target = int.from_bytes(prefix, "little")
    path = save((target - unpadded) % modulus)
    assert path.read_bytes()[: len(prefix)] == prefix
    model, meta = load_checkpoint(path)
    assert meta.name == "magic" and isinstance(model, GLFF)
    assert read_metadata(path)["training"]["pad"].startswith("x")


def test_saved_files_are_readable_by_the_group_and_replaced_atomically(tmp_path: Path) -> None:
    """safetensors alone writes 0600 in place: a server running as another user could not
    read the checkpoint, and a folder watcher could load half a file."""
    import os
    import stat

    from detector.model import build_model

    model = build_model(
        ModelConfig(arch="global_only", backbone="mobilenet_v2", patch_strategy="none")
    )
    path = tmp_path / "ckpt.safetensors"
    old = os.umask(0o022)
    try:
        save_checkpoint(path, model)
        first = path.stat().st_ino
        save_checkpoint(path, model)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.stat().st_ino != first  # a new file renamed over the old one, not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]  # no temporary left
