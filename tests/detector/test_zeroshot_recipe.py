"""The zero-shot recipe and CLI on a tiny manifest of synthetic images (CPU, seconds)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.cli import main
from detector.zeroshot.artifact import load_zeroshot
from detector.zeroshot.data import Row, split_holdout, upload_variant
from detector.zeroshot.describe import DescribeParams
from detector.zeroshot.recipe import RecipeConfig, fit_recipe
from tests.detector.test_zeroshot import natural_like, nearest_upsampled

pytest.importorskip("sklearn")

TINY = RecipeConfig(
    params=DescribeParams(neighbourhood=3, scales=2, max_pixels=256, chunk=128),
    variants=1,
    holdout_every=4,
    filter_steps=3,
    crop=32,
    crop_batch=2,
    components=1,
    pca_dims=4,
)


def _manifest(root: Path) -> Path:
    rows = []
    for i in range(12):
        Image.fromarray(natural_like(64, i)).save(root / f"real{i}.png")
        rows.append((f"real{i}.png", 0, "train" if i < 10 else "val", "photo", f"src{i % 2}"))
    for i in range(2):
        Image.fromarray(nearest_upsampled(64, 50 + i)).save(root / f"fake{i}.png")
        rows.append((f"fake{i}.png", 1, "val", "nn-upsampler", "test"))
    path = root / "manifest.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split", "family", "source"])
        writer.writerows(rows)
    return path


def test_split_holdout_is_per_source_and_deterministic() -> None:
    rows = [Row(Path(f"{s}{i}.png"), 0, source=s) for s in "ab" for i in range(10)]
    fit, held = split_holdout(rows, 5)
    assert len(held) == 4 and len(fit) == 16
    assert sorted(r.source for r in held) == ["a", "a", "b", "b"]
    assert split_holdout(rows, 5) == (fit, held)


def test_upload_variant_is_seeded() -> None:
    img = Image.fromarray(natural_like(80, 1))
    a = upload_variant(img, np.random.default_rng(3))
    b = upload_variant(img, np.random.default_rng(3))
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_fit_recipe_uses_train_reals_and_resumes_from_its_cache(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    cache = tmp_path / "cache"
    model = fit_recipe(manifest, TINY, cache)
    counts = model.info["counts"]
    assert counts["fit_photos"] + counts["held_photos"] == 10  # train reals only
    assert counts["fit_descriptions"] == 2 * counts["fit_photos"]  # photo + 1 variant
    files = sorted(p.name for p in cache.rglob("*.npy"))
    assert len(files) == 20
    again = fit_recipe(manifest, TINY, cache)
    assert sorted(p.name for p in cache.rglob("*.npy")) == files
    assert again.threshold == pytest.approx(model.threshold)


def test_cli_fit_score_and_score_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path)
    art = tmp_path / "zs.safetensors"
    args = ["zeroshot", "fit", str(manifest), "--out", str(art), "--variants", "1"]
    args += ["--filter-steps", "2", "--components", "1", "--pca-dims", "4"]
    args += ["--neighbourhood", "3", "--max-pixels", "256"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["bytes"] > 0
    assert load_zeroshot(art).params.neighbourhood == 3
    img = tmp_path / "fake0.png"
    assert main(["zeroshot", "score", str(art), str(img), "--boxes", "0,0,32,32"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["path"] == str(img) and len(record["boxes"]) == 1
    assert isinstance(record["is_synthetic"], bool)
    out = tmp_path / "scores.csv"
    assert (
        main(
            [
                "zeroshot",
                "score-manifest",
                str(art),
                str(manifest),
                "--out",
                str(out),
                "--split",
                "val",
            ]
        )
        == 0
    )
    with out.open() as fh:
        scored = list(csv.DictReader(fh))
    assert len(scored) == 4 and {r["label"] for r in scored} == {"0", "1"}
