"""``python -m detector``: init-checkpoint, predict (JSON lines) and --overlay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.checkpoint import read_metadata
from detector.cli import main
from tests.detector.imaging import random_array

ROOT = Path(__file__).resolve().parents[2]


def test_module_entry_point_lists_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "detector", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("predict", "init-checkpoint", "convert"):
        assert command in result.stdout


def test_init_checkpoint_then_predict_with_overlay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "m.safetensors"
    args = [
        "init-checkpoint",
        "--backbone",
        "mobilenet_v2",
        "--out",
        str(ckpt),
        "--threshold",
        "0.3",
    ]
    assert main(args) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["parameters"] == 2_686_721 and len(created["sha256"]) == 64
    meta = read_metadata(ckpt)
    assert meta["backbone"] == "mobilenet_v2" and meta["threshold"] == 0.3
    assert meta["training"]["init"] == "random"

    images = []
    for name, (h, w) in {"a": (200, 300), "b": (80, 60)}.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(random_array(h, w)).save(path)
        images.append(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xffnope")
    overlay = tmp_path / "overlay"
    code = main(
        [
            "predict",
            "--checkpoint",
            str(ckpt),
            "--overlay",
            str(overlay),
            *map(str, images),
            str(broken),
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1  # one image failed
    by_path = {Path(line["path"]).name: line for line in lines}
    assert by_path["broken.jpg"]["error"]["type"] == "ImageDecodeError"
    a = by_path["a.png"]
    assert a["width"] == 300 and len(a["patches"]) == 6 and a["threshold"] == 0.3
    assert list(a)[:3] == ["path", "decision", "label"]  # the decision leads
    assert a["decision"] in ("synthetic", "uncertain", "real")
    assert a["label"] == ("synthetic" if a["score"] >= 0.3 else "real")
    assert "real below 0.200, synthetic from 0.400" in a["reasons"][0]["detail"]  # fallback
    drawn = np.asarray(Image.open(a["overlay"]))
    assert drawn.shape == (200, 300, 3)
    original = random_array(200, 300)
    x0, y0, _, _ = a["patches"][0]["box"]
    assert not np.array_equal(drawn[y0 + 30, x0 : x0 + 2], original[y0 + 30, x0 : x0 + 2])
    assert (overlay / "b.overlay.png").is_file()


def test_init_checkpoint_imagenet_and_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "base.safetensors"
    args = ["init-checkpoint", "--arch", "global_only", "--backbone", "mobilenet_v2"]
    assert main([*args, "--backbone-weights", "imagenet", "--out", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["architecture"] == "global_only" and meta["patch_strategy"] == "none"
    assert meta["training"]["init"] == "imagenet"


def test_bad_checkpoint_exits_with_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"\x80\x04junk")
    image = tmp_path / "i.png"
    Image.fromarray(random_array(40, 40)).save(image)
    assert main(["predict", "--checkpoint", str(bad), str(image)]) == 2
    assert "CheckpointError" in capsys.readouterr().err
