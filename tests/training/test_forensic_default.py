"""The shipped default's recipe (detector.recipes.forensic_default) end to end, tiny settings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.checkpoint import load_checkpoint
from detector.engine import Detector
from detector.recipes.forensic_default import BAND_TPR, RecipeConfig, main, run
from detector.recipes.forensic_views import condition_image
from detector.training.forensic_train import ForensicTrainConfig
from detector.training.lofo import GROUPS, PEOPLE

TINY = RecipeConfig(
    branch=ForensicTrainConfig(steps=4, batch_size=8, crop=32, variants=0, save_every=2),
    fusion_epochs=3,
)  # the ImageNet global trunk, as shipped (its features make the scores differ by image)


def _image(seed: int, fake: bool, side: int = 128) -> Image.Image:
    """Smooth noise; a fake is nearest-upsampled from half size (a generator-like trace)."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.integers(0, 256, (side // 8, side // 8, 3)).astype(np.uint8))
    if not fake:
        return low.resize((side, side), Image.Resampling.BICUBIC)
    half = low.resize((side // 2, side // 2), Image.Resampling.BICUBIC)
    return half.resize((side, side), Image.Resampling.NEAREST)


def _devset(root: Path) -> Path:
    """A manifest like the devset's: scene photos, people photos (one held-out source), and
    fakes of every LOFO group; every third row is a validation row."""
    rows = [("photo", "scenes", 0)] * 8 + [(PEOPLE, "deepface-tests", 0)] * 2
    rows += [(PEOPLE, "vladmandic-human-samples", 0)] * 4
    rows += [(families[0], "gen", 1) for families in GROUPS.values() for _ in range(3)]
    path = root / "manifest.csv"
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "label", "split", "family", "source", "sha256"])
        for i, (family, source, label) in enumerate(rows):
            _image(i, bool(label)).save(root / f"{i}.png")
            split = "val" if i % 3 == 0 else "train"
            out.writerow([f"{i}.png", label, split, family, source, f"{i:08x}"])
    return path


@pytest.mark.timeout(120)
def test_the_recipe_writes_a_calibrated_checkpoint_that_scores_like_the_recipe(
    tmp_path: Path,
) -> None:
    manifest = _devset(tmp_path)
    out = tmp_path / "default.safetensors"
    summary = run(manifest, tmp_path / "work", out, TINY)
    _, meta = load_checkpoint(out)
    assert meta.name == "glff-forensic-mobilenet_v2" and meta.config.local_backbone == "forensic"
    assert 0.0 < meta.threshold < 1.0 and summary["threshold"] == meta.threshold
    real_below, synthetic_from = meta.band_edges() or (None, None)
    assert real_below is not None and synthetic_from is not None
    assert real_below <= meta.threshold <= synthetic_from
    assert meta.decision_band is not None and meta.decision_band["min_tpr"] == BAND_TPR
    assert set(meta.training["held_out"]) == {"fpr_real", "fpr_people", "fpr_crops"}
    temperature = meta.training["temperature"]  # fitted on validation, folded into the head
    assert temperature["value"] > 0 and temperature["nll_after"] <= temperature["nll_before"]
    assert meta.training["held_out"]["fpr_crops"] is not None  # the held-out people's crops
    # held out: 2 of the 8 scene photos and both deepface-tests photos (+ their 2 crops);
    # the other 22 rows: 15 train (q90 + proc each), 7 val
    assert summary["counts"] == {"train": 2 * 15, "val": 7, "test": 4 + 2}
    assert (
        json.loads((tmp_path / "work" / "recipe.json").read_text())["sha256"] == summary["sha256"]
    )
    # The checkpoint, served by the engine (fp16 weights as written), scores the validation
    # images as the recipe did when it chose the threshold.
    det = Detector.from_checkpoint(out, device="cpu")
    expected = summary["val_scores"]
    rows = [{"path": p, "label": "0"} for p in expected]
    scores = [p.score for p in det.predict([condition_image(r, "q90") for r in rows])]
    assert max(scores) - min(scores) > 0.05  # else agreeing would say little
    assert np.max(np.abs(np.array(scores) - np.array(list(expected.values())))) < 0.005


@pytest.mark.timeout(120)
def test_the_command_line_resumes_from_its_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _devset(tmp_path)
    work = tmp_path / "work"
    run(manifest, work, tmp_path / "first.safetensors", TINY)
    branch = (work / "all" / "forensic.pt").stat().st_mtime_ns
    # 2,000 steps are the default: the cached views and branch are reused whatever --steps
    # says, so this run only re-fits the fusion (60 epochs).
    assert main([str(manifest), "--work", str(work), "--out", str(tmp_path / "b.safetensors")]) == 0
    assert (work / "all" / "forensic.pt").stat().st_mtime_ns == branch
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["out"] == str(tmp_path / "b.safetensors") and "val_scores" not in printed
