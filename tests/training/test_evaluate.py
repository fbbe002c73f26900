"""Evaluation: per-group metrics vs scikit-learn, Table 2 layout, robustness plots, calibration,
and the ``python -m detector`` commands."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from detector.checkpoint import read_metadata
from detector.cli import main
from detector.training.datasets import Sample, discover_folders
from detector.training.evaluate import calibrate_checkpoint
from detector.training.report import Scored, group_rows, table2_markdown, table2_row
from detector.training.taxonomy import UNASSIGNED, load_families

PAPER_COLUMNS = [
    "ProGAN", "Cond. GANs", "Uncond. GANs", "Perceptual loss", "Low-level vision", "DeepFakes",
    "Others",
]  # fmt: skip


def test_shipped_families_follow_the_paper() -> None:
    fam = load_families("cnndetection")
    assert [f.name for f in fam.families] == PAPER_COLUMNS
    assert fam.generator_count == 19
    assert [f.name for f in fam.families if f.seen] == ["ProGAN"]
    # CNNDetection test-folder names land in the paper's families.
    expected = {
        "progan": "ProGAN", "biggan": "Uncond. GANs", "stylegan2": "Uncond. GANs",
        "cyclegan": "Cond. GANs", "gaugan": "Cond. GANs", "stargan": "Cond. GANs",
        "crn": "Perceptual loss", "imle": "Perceptual loss", "seeingdark": "Low-level vision",
        "san": "Low-level vision", "deepfake": "DeepFakes", "whichfaceisreal": UNASSIGNED,
    }  # fmt: skip
    assert {k: fam.family_of(k) for k in expected} == expected
    assert fam.generator_of("seeingdark") == "SITD"


def _scored(rows: list[tuple[str, int, float]], threshold: float = 0.5) -> Scored:
    samples = [Sample(Path(f"/x/{g}/{i}.png"), y, g) for i, (g, y, _) in enumerate(rows)]
    return Scored("m", samples, np.array([s for _, _, s in rows]), threshold)


def test_table2_numbers_and_layout() -> None:
    fam = load_families("cnndetection")
    rng = np.random.default_rng(0)
    rows = []
    for gen in ("progan", "cyclegan", "stargan", "crn", "whichfaceisreal"):
        for y in (0, 1) * 10:
            rows.append((gen, y, float(rng.random() * 0.7 + 0.3 * y)))
    sc = _scored(rows)
    t2 = table2_row(sc, fam)
    y, s = sc.labels, sc.scores
    gen = np.array([x.group for x in sc.samples])

    def ap(name: str) -> float:
        return float(average_precision_score(y[gen == name], s[gen == name]))

    assert t2.family_map["ProGAN"] == pytest.approx(ap("progan"))
    assert t2.family_map["Cond. GANs"] == pytest.approx((ap("cyclegan") + ap("stargan")) / 2)
    assert t2.family_map[UNASSIGNED] == pytest.approx(ap("whichfaceisreal"))
    assert math.isnan(t2.family_map["DeepFakes"])
    five = ["progan", "cyclegan", "stargan", "crn", "whichfaceisreal"]
    assert t2.total_map == pytest.approx(np.mean([ap(g) for g in five]))
    assert t2.global_ap == pytest.approx(average_precision_score(y, s))
    md = table2_markdown([t2], fam).splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    assert header == ["method", *PAPER_COLUMNS, UNASSIGNED, "Total mAP", "Global AP"]
    cells = [c.strip() for c in md[2].strip("|").split("|")]
    assert cells[1] == f"{100 * ap('progan'):.3f}" and cells[6] == "–"
    assert cells[-1] == f"{100 * t2.global_ap:.3f}"


def test_group_rows_against_reference() -> None:
    rows = [("a", 0, 0.1), ("a", 1, 0.8), ("a", 0, 0.6), ("a", 1, 0.4), ("b", 1, 0.9),
            ("b", 1, 0.3)]  # fmt: skip
    out = {r.group: r for r in group_rows(_scored(rows, threshold=0.35), "group")}
    a = out["a"].metrics
    assert a.ap == pytest.approx(average_precision_score([0, 1, 0, 1], [0.1, 0.8, 0.6, 0.4]))
    assert a.auc == pytest.approx(roc_auc_score([0, 1, 0, 1], [0.1, 0.8, 0.6, 0.4]))
    assert (a.acc, a.acc_05, a.real_acc, a.fake_acc) == (0.75, 0.5, 0.5, 1.0)
    b = out["b"]
    assert math.isnan(b.metrics.ap) and b.metrics.fake_acc == 0.5  # 0.3 < 0.35
    # b's fakes paired with all real images (0.1, 0.6).
    assert b.ap_paired == pytest.approx(average_precision_score([1, 1, 0, 0], [0.9, 0.3, 0.1, 0.6]))
    assert out["ALL"].metrics.n == 6


def test_evaluate_cli_reports_and_robustness_plots(
    make_dataset: Callable[..., Path], tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_dataset(groups=("progan", "cyclegan", "seeingdark"), per_class=3)
    (root / "cyclegan" / "1_fake" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    glff, baseline = tiny_checkpoint("glff", 0.4), tiny_checkpoint("global_only", 0.5, seed=1)
    out = tmp_path / "eval"
    code = main([
        "evaluate", str(glff), str(baseline), "--data", str(root), "--families", "cnndetection",
        "--out", str(out), "--name", "GLFF", "--name", "CNN_aug", "--robustness",
        "--blur-sigmas", "0", "2", "--jpeg-qualities", "90", "40", "--workers", "0",
        "--no-progress", "--batch-size", "4",
    ])  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    methods = {m["method"]: m for m in report["methods"]}
    assert set(methods) == {"GLFF", "CNN_aug"}
    assert methods["GLFF"]["threshold"] == pytest.approx(0.4)
    assert methods["GLFF"]["skipped"] == 1
    assert list(methods["GLFF"]["skipped_files"]) == [str(root / "cyclegan/1_fake/broken.jpg")]
    with (out / "groups.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == "GLFF"]
    assert [r["group"] for r in rows] == ["cyclegan", "progan", "seeingdark", "ALL"]
    assert [int(r["n_fake"]) for r in rows] == [3, 3, 3, 9]  # the broken file is not counted
    table = (out / "table2.md").read_text()
    assert table.splitlines()[0].startswith("| method | ProGAN | Cond. GANs |")
    assert "| GLFF |" in table and "| CNN_aug |" in table
    with (out / "scores.csv").open() as fh:
        per_image = list(csv.DictReader(fh))
    assert len(per_image) == 2 * 19  # 18 images + the broken one, for both methods
    assert sum(r["score"] == "" for r in per_image) == 2
    for name in ("robustness_blur.png", "robustness_jpeg.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with (out / "robustness.csv").open() as fh:
        points = list(csv.DictReader(fh))
    assert len(points) == 2 * 4 and {p["kind"] for p in points} == {"blur", "jpeg"}
    clean = next(p for p in points if p["method"] == "GLFF" and p["kind"] == "blur"
                 and float(p["value"]) == 0)  # fmt: skip
    assert float(clean["ap"]) == pytest.approx(methods["GLFF"]["groups"][-1]["ap"])


def test_evaluate_metrics_match_reference_on_model_scores(
    make_dataset: Callable[..., Path], tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    from detector.engine import Detector

    root = make_dataset(groups=("g1", "g2"), per_class=4)
    ckpt = tiny_checkpoint("glff", 0.5, seed=3)
    out = tmp_path / "eval"
    assert main(["evaluate", str(ckpt), "--data", str(root), "--out", str(out),
                 "--workers", "0", "--no-progress"]) == 0  # fmt: skip
    # Independent reference: the inference engine's scores + scikit-learn.
    samples = discover_folders(root)
    det = Detector.from_checkpoint(ckpt, device="cpu")
    scores = np.array([p.score for p in det.predict([s.path for s in samples])])
    labels = np.array([s.label for s in samples])
    groups = np.array([s.generator for s in samples])
    got = {g["group"]: g for g in json.loads((out / "report.json").read_text())["methods"][0]
           ["groups"]}  # fmt: skip
    for name in ("g1", "g2"):
        m = groups == name
        assert got[name]["ap"] == pytest.approx(average_precision_score(labels[m], scores[m]),
                                                abs=1e-4)  # fmt: skip
        assert got[name]["auc"] == pytest.approx(roc_auc_score(labels[m], scores[m]), abs=1e-4)
        assert got[name]["acc"] == pytest.approx(float(((scores[m] >= 0.5) == labels[m]).mean()))
    assert got["ALL"]["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-4)


def test_calibrate_writes_threshold_and_refuses_test_data(
    make_dataset: Callable[..., Path], tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_dataset(groups=("val",), per_class=6, name="val")
    ckpt = tiny_checkpoint("glff", 0.5, seed=2)
    out = tmp_path / "calibrated.safetensors"
    cal, _ = calibrate_checkpoint(ckpt, root, out, method="fpr", target_fpr=0.2, half=True,
                                  workers=0, device="cpu", progress=False)  # fmt: skip
    meta = read_metadata(out)
    assert meta["threshold"] == pytest.approx(cal.threshold)
    assert meta["training"]["calibration"]["method"] == "fpr"
    assert meta["training"]["calibration"]["fpr"] <= 0.2
    band = meta["decision_band"]
    assert 0 < band["real_below"] <= cal.threshold <= band["synthetic_from"] < 1
    assert (band["max_fpr"], band["min_tpr"], band["n_real"] + band["n_fake"]) == (0.01, 0.95, 12)
    from safetensors import safe_open

    with safe_open(str(out), "pt") as fh:
        assert fh.get_tensor("head.weight").dtype.is_floating_point
        assert str(fh.get_tensor("head.weight").dtype) == "torch.float16"
    test_root = make_dataset(groups=("g",), per_class=2, name="test")
    with pytest.raises(ValueError, match="test data"):
        calibrate_checkpoint(ckpt, test_root, out, workers=0, device="cpu", progress=False)
