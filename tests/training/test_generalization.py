"""Generalization tools on tiny inputs: input representations, format debiasing, the
JPEG re-encoded evaluation, debiased training with extra data, and ``synth-fakes``."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.checkpoint import (
    CheckpointMetadata,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from detector.cli import main
from detector.engine import Detector
from detector.model import ModelConfig, build_model
from detector.representation import npr_residual
from detector.training.augment import DebiasAugment, DebiasConfig
from detector.training.config import TrainConfig
from detector.training.datasets import load_samples
from detector.training.scoring import score_samples
from detector.training.synth_fakes import AutoEncoder, reconstruct
from detector.training.trainer import train
from tests.training.conftest import TINY, image_array, write_image


def test_npr_residual_is_zero_on_nearest_upsampled_images_and_on_block_corners() -> None:
    low = torch.rand(2, 3, 5, 6) * 255
    up = low.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # [2, 3, 10, 12]
    assert torch.count_nonzero(npr_residual(up)) == 0
    x = torch.rand(1, 3, 7, 9) * 255  # odd sizes
    r = npr_residual(x)
    assert r.shape == x.shape
    assert torch.count_nonzero(r[..., ::2, ::2]) == 0
    assert torch.allclose(r[..., 0, 1], x[..., 0, 1] - x[..., 0, 0])
    assert torch.allclose(r[..., 6, 8], torch.zeros(1, 3))


@pytest.mark.parametrize("arch", ["glff", "global_only"])
def test_both_widens_the_first_convolution_and_round_trips(arch: str, tmp_path: Path) -> None:
    cfg = ModelConfig(
        arch=arch,
        backbone=TINY,
        patch_strategy="none" if arch == "global_only" else "psm",
        input_repr="both",
    )
    model = build_model(cfg)
    first = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 6
    path = tmp_path / "both.safetensors"
    save_checkpoint(path, model, CheckpointMetadata(name="both"))
    assert read_metadata(path)["model"]["input_repr"] == "both"
    det = Detector.from_checkpoint(path, device="cpu")
    pred = det.predict([Image.fromarray(image_array(50, 70, True, 0))])
    assert 0.0 <= pred[0].score <= 1.0
    with pytest.raises(ValueError, match="input_repr"):
        ModelConfig(backbone=TINY, input_repr="fft")


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_npr_checkpoint_scores_identically_in_detector_and_training_eval(
    make_dataset: Callable[..., Path], tmp_path: Path, runtime: str
) -> None:
    root = make_dataset(groups=("g",), per_class=3)
    torch.manual_seed(0)
    cfg = ModelConfig(arch="glff", backbone=TINY, input_repr="npr")
    path = tmp_path / "npr.safetensors"
    save_checkpoint(path, build_model(cfg), CheckpointMetadata(name="npr"))
    samples = load_samples(root)
    # det.model is an inference copy; score_samples copies it again (an ONNX Runtime session,
    # the CPU default, is shared by the copy: it cannot be deep-copied)
    det = Detector.from_checkpoint(path, device="cpu", runtime=runtime)
    assert det.model.config.input_repr == "npr"
    from_engine = np.array([p.score for p in det.predict([s.path for s in samples])])
    from_eval, _ = score_samples(det.model, samples, batch_size=4, progress=False)
    np.testing.assert_allclose(from_engine, from_eval, rtol=0, atol=1e-6)
    # The residual really is the input: an RGB model with the same weights scores differently.
    rgb = build_model(ModelConfig(arch="glff", backbone=TINY))
    rgb.load_state_dict(load_checkpoint(path)[0].state_dict())  # det.model is an inference copy
    from_rgb, _ = score_samples(rgb, samples, batch_size=4, progress=False)
    assert not np.allclose(from_rgb, from_eval)


def test_debias_is_seeded_and_treats_png_and_jpeg_alike(tmp_path: Path) -> None:
    img = Image.fromarray(image_array(64, 80, False, 1))
    aug = DebiasAugment(DebiasConfig(crop_min=0.5, jpeg_quality_min=70, jpeg_quality_max=80))
    a = np.asarray(aug(img, np.random.default_rng(3)))
    b = np.asarray(aug(img, np.random.default_rng(3)))
    assert np.array_equal(a, b)
    sizes = {aug(img, np.random.default_rng(s)).size for s in range(8)}
    assert len(sizes) > 1 and all(32 <= w <= 80 and 32 <= h <= 64 for w, h in sizes)
    # Always JPEG-compressed: not the original pixels even without a crop.
    full = DebiasAugment(DebiasConfig(crop_min=1.0))(img, np.random.default_rng(0))
    assert full.size == img.size and not np.array_equal(np.asarray(full), np.asarray(img))
    with pytest.raises(ValueError):
        DebiasConfig(crop_min=0.0)


def test_evaluate_reencodes_every_image_identically(
    make_dataset: Callable[..., Path], tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_dataset(groups=("gan",), per_class=3)
    ckpt = tiny_checkpoint()
    out = tmp_path / "eval"
    argv = ["evaluate", str(ckpt), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--reencode-jpeg", "90", "75", "--workers", "0", "--no-progress"]) == 0
    for q in (90, 75):
        report = json.loads((out / f"jpeg-q{q}" / "report.json").read_text())
        assert report["methods"][0]["reencode_jpeg"] == q
    plain = {r["path"]: r["score"] for r in csv.DictReader((out / "scores.csv").open())}
    q75 = {r["path"]: r["score"] for r in csv.DictReader((out / "jpeg-q75" / "scores.csv").open())}
    assert plain.keys() == q75.keys() and plain != q75


def test_debiased_npr_training_with_extra_fakes(
    make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    make_dataset(groups=("train/a",), per_class=3, name="d")
    make_dataset(groups=("val",), per_class=2, name="d")
    extra = tmp_path / "extra.csv"
    with extra.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for i in range(2):
            w.writerow([write_image(tmp_path / "x" / f"{i}.png", 48, 40, True, 50 + i).name, 1])
    (tmp_path / "x" / "extra.csv").write_text(extra.read_text())
    cfg = TrainConfig(
        train=str(tmp_path / "d" / "train"),
        val=str(tmp_path / "d" / "val"),
        out=str(tmp_path / "run"),
        backbone=TINY,
        backbone_weights=None,
        batch_size=4,
        workers=0,
        progress=False,
        epochs=1,
        input_repr="npr",
        debias=True,
        extra_train=(str(tmp_path / "x" / "extra.csv"),),
    )
    result = train(cfg)
    meta = read_metadata(result.best_path)
    assert meta["model"]["input_repr"] == "npr"
    assert meta["training"]["config"]["debias"] is True
    assert meta["training_data"]["train"]["images"] == 8  # 6 + 2 extra fakes
    det = Detector.from_checkpoint(result.best_path, device="cpu")
    assert det.model.config.input_repr == "npr"


def test_autoencoder_kinds_keep_the_image_size() -> None:
    pixels = torch.from_numpy(image_array(37, 53, False, 2)).permute(2, 0, 1).contiguous()
    for kind in ("tconv", "nearest", "bilinear", "pixelshuffle"):
        for factor in (2, 8):
            out = reconstruct(AutoEncoder(kind, factor, width=8).eval(), pixels)
            assert out.shape == pixels.shape and out.dtype == torch.uint8
    with pytest.raises(ValueError):
        AutoEncoder("deconv", 2)


def test_synth_fakes_cli_is_seeded_and_links_each_fake_to_its_real(tmp_path: Path) -> None:
    real = tmp_path / "real"
    sizes = [(40, 56), (33, 47), (64, 48)]
    for i, (h, w) in enumerate(sizes):
        write_image(real / f"p{i}.{'png' if i % 2 else 'jpg'}", h, w, False, i)
    args = ["--steps", "3", "--batch-size", "2", "--crop", "24", "--width", "8", "--no-progress"]
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["synth-fakes", str(real), "--out", str(out), *args]) == 0
        outs.append(out)
    rows = list(csv.DictReader((outs[0] / "manifest.csv").open()))
    assert len(rows) == 3 and {r["label"] for r in rows} == {"1"}
    assert len({r["family"] for r in rows}) == 3  # assigned round robin over the autoencoders
    for r in rows:
        fake, src = Image.open(outs[0] / r["path"]), Image.open(r["real_path"])
        assert fake.size == src.size and r["family"] == f"ae-{r['kind']}-x{r['factor']}"

    def digest(out: Path) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())]

    assert digest(outs[0]) == digest(outs[1])
