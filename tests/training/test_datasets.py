"""Dataset discovery (CNNDetection layout, manifests), mixed sizes, corrupt files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.training.datasets import (
    ImageDataset,
    SkipReport,
    discover_folders,
    group_key,
    load_samples,
    make_loader,
    read_manifest,
)
from tests.training.conftest import write_image


def test_discovery_finds_nested_and_root_level_leaves(tmp_path: Path) -> None:
    root = tmp_path / "test"
    write_image(root / "biggan" / "0_real" / "a.png", 40, 40, False, 0)
    write_image(root / "biggan" / "1_fake" / "b.png", 40, 40, True, 1)
    write_image(root / "cyclegan" / "apple" / "0_real" / "c.jpg", 40, 48, False, 2)
    write_image(root / "cyclegan" / "apple" / "1_fake" / "d.jpg", 40, 48, True, 3)
    write_image(root / "cyclegan" / "horse" / "1_fake" / "e.png", 40, 48, True, 4)
    (root / "cyclegan" / "horse" / "1_fake" / "notes.txt").write_text("not an image")
    samples = discover_folders(root)
    assert [(s.group, s.label, s.path.name) for s in samples] == [
        ("biggan", 0, "a.png"),
        ("biggan", 1, "b.png"),
        ("cyclegan/apple", 0, "c.jpg"),
        ("cyclegan/apple", 1, "d.jpg"),
        ("cyclegan/horse", 1, "e.png"),
    ]
    assert Counter(s.generator for s in samples) == {"biggan": 2, "cyclegan": 3}

    flat = tmp_path / "progan_val"
    write_image(flat / "0_real" / "x.png", 40, 40, False, 5)
    write_image(flat / "1_fake" / "y.png", 40, 40, True, 6)
    assert {s.group for s in discover_folders(flat)} == {"progan_val"}


def test_discovery_without_images_fails(tmp_path: Path) -> None:
    (tmp_path / "empty" / "0_real").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        discover_folders(tmp_path / "empty")


def test_manifest_split_family_and_extra_columns(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "r.png", 40, 40, False, 0)
    write_image(tmp_path / "imgs" / "f.png", 40, 40, True, 1)
    csv = tmp_path / "manifest.csv"
    csv.write_text(
        "path,label,split,family,source\n"
        "imgs/r.png,0,val,photo,Kodak24\n"
        "imgs/f.png,1,val,sd15,CheatSheet\n"
        "imgs/f.png,1,train,sd15,CheatSheet\n"
    )
    val = load_samples(csv, "val")
    assert [(s.label, s.group, s.path) for s in val] == [
        (0, "photo", tmp_path / "imgs" / "r.png"),
        (1, "sd15", tmp_path / "imgs" / "f.png"),
    ]
    assert [group_key(s, "source") for s in val] == ["Kodak24", "CheatSheet"]
    assert len(read_manifest(csv)) == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nx.png,0\n")
    with pytest.raises(ValueError, match="missing column"):
        read_manifest(bad)


def test_mixed_sizes_keep_original_pixels(make_dataset: Callable[..., Path]) -> None:
    samples = discover_folders(make_dataset(groups=("g",), per_class=4))
    dataset = ImageDataset(samples)
    batch = next(iter(make_loader(dataset, batch_size=8, shuffle=False)))
    sizes = {tuple(s) for s in batch.sizes.tolist()}
    assert len(sizes) > 1, "the fixture should produce mixed sizes"
    assert batch.pixels.shape[2:] == (
        max(h for h, _ in sizes),
        max(w for _, w in sizes),
    )
    for row, index in enumerate(batch.indices.tolist()):
        with Image.open(samples[index].path) as im:
            original = np.asarray(im.convert("RGB"))
        h, w = batch.sizes[row].tolist()
        assert original.shape[:2] == (h, w)  # not resized
        np.testing.assert_array_equal(batch.pixels[row, :, :h, :w].permute(1, 2, 0), original)
        assert int(batch.pixels[row, :, h:, :].sum()) == 0  # zero padding below
    assert batch.labels.tolist() == [float(samples[i].label) for i in batch.indices.tolist()]


def test_corrupt_files_are_reported_and_skipped(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset(groups=("g",), per_class=3)
    (root / "g" / "1_fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "g" / "0_real" / "empty.jpg").write_bytes(b"")
    samples = discover_folders(root)
    dataset = ImageDataset(samples)
    report = SkipReport(samples)
    seen = 0
    for batch in make_loader(dataset, batch_size=4, shuffle=False, workers=2):
        report.add(batch)
        seen += len(batch)
    assert seen == len(samples) - 2
    assert report.count == 2
    assert {Path(p).name for p in report.errors} == {"broken.png", "empty.jpg"}
    assert "2 corrupt/unreadable file(s) skipped" in report.summary()
