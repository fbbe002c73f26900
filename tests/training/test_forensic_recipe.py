"""The forensic branch's recipe: LOFO split, everyday processing, crop pool, a short training."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.training.datasets import Sample
from detector.training.forensic_train import ForensicTrainConfig, build_pool, train_forensic
from detector.training.lofo import GROUPS, HELD_OUT_PEOPLE, lofo_folds, read_rows
from detector.training.processing import (
    ProcessingConfig,
    everyday_processing,
    small_upscaled_crop,
)


def _smooth(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.uint8)
    return Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC)


def _nearest_up(img: Image.Image) -> Image.Image:
    w, h = img.size
    half = img.resize((w // 2, h // 2), Image.Resampling.BOX)
    return half.resize((w, h), Image.Resampling.NEAREST)


def _manifest(tmp_path: Path) -> Path:
    rows = []
    families = {"photo": "scenes", "photo (people)": "deepface-tests"}
    for _ in range(8):
        for family, source in families.items():
            rows.append(["r", family, source, "0"])
        rows.append(["p", "photo (people)", "vladmandic-human-samples", "0"])
    for group, fams in GROUPS.items():
        rows += [[group, fams[0], "gen", "1"]] * 3
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "family", "source", "sha256"])
        for i, (_, family, source, label) in enumerate(rows):
            split = "val" if i % 5 == 0 else "train"
            w.writerow([f"{i}.png", label, split, family, source, f"{i:08x}"])
    return path


def test_people_sources_are_held_out_whole_and_groups_are_disjoint(tmp_path: Path) -> None:
    rows = read_rows(_manifest(tmp_path))
    folds = {f.name: f for f in lofo_folds(rows)}
    assert "deepface-tests" in HELD_OUT_PEOPLE
    for fold in folds.values():
        trained = fold.train + fold.val
        assert not any(r["source"] == "deepface-tests" for r in trained)
        assert all(r["group"] != fold.name for r in trained)
        assert not {r["path"] for r in trained} & {r["path"] for r in fold.test}
    people_test = [r for r in folds["gan"].test if r["family"] == "photo (people)"]
    assert {r["source"] for r in people_test} == {"deepface-tests"}
    scenes_test = [r for r in folds["gan"].test if r["family"] == "photo"]
    assert len(scenes_test) == 2  # a quarter of the 8 scene photos


def test_everyday_processing_is_seeded_and_changes_pixels() -> None:
    img = _smooth(0, 200)
    cfg = ProcessingConfig(downscale_prob=1.0, upscale_prob=1.0, jpeg_prob=1.0)
    a = everyday_processing(img, np.random.default_rng(3), cfg)
    b = everyday_processing(img, np.random.default_rng(3), cfg)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size != img.size or not np.array_equal(np.asarray(a), np.asarray(img))
    crop = small_upscaled_crop(img, seed=1)
    assert 200 <= crop.size[0] == crop.size[1] <= 256


@pytest.mark.timeout(120)
def test_a_short_training_separates_nearest_upsampled_images(tmp_path: Path) -> None:
    reals = [_smooth(i) for i in range(12)]
    paths = []
    for i, img in enumerate(reals):
        for label, out in ((0, img), (1, _nearest_up(_smooth(100 + i)))):
            path = tmp_path / f"{label}-{i}.png"
            out.save(path)
            paths.append(Sample(path, label, "g"))
    config = ForensicTrainConfig(steps=60, batch_size=16, crop=32, variants=0, width=8, lr=5e-3)
    torch.manual_seed(0)
    model = train_forensic(build_pool(paths[:16], config), config, tmp_path / "state.pt")
    assert (tmp_path / "state.pt").is_file()
    held = paths[16:]
    with torch.no_grad():
        logits = [
            model(torch.from_numpy(np.array(Image.open(s.path))).permute(2, 0, 1)[None].float())
            for s in held
        ]
    fake = [float(x) for x, s in zip(logits, held, strict=True) if s.label == 1]
    real = [float(x) for x, s in zip(logits, held, strict=True) if s.label == 0]
    assert min(fake) > max(real)
