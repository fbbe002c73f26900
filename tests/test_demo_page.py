"""The demo's page (scripts/demo_page.py): the decision leads, the page agrees with the verdict
events, patch boxes are drawn for a GLFF checkpoint, and a global-only model says so once.

The screenshot test renders the page in headless Chromium (Debian's ``chromium`` package;
``make chromium`` installs it) and looks for the boxes' stroke colours in the pixels. Without
Chromium it is skipped, unless ``SYNTHSCAN_REQUIRE_CHROMIUM=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from consumer.output.records import model_stamp
from consumer.output.verdict_fields import verdict_fields
from detector import Detector, Prediction
from provenance import DecisionPolicy
from schemas import ImageInfo, Patch, Verdict
from scripts.demo_page import NO_PATCHES, counts, disagreements, read_page, summary, write_html
from tests.schemas.schema_builders import make_verdict

GLFF = (
    Path(__file__).resolve().parents[1] / "detector/checkpoints/demo-glff-mobilenet_v2.safetensors"
)
MAGENTA, CYAN = (255, 0, 255), (0, 255, 255)


def _images(folder: Path) -> list[Path]:
    """Grey-ish pictures (no pure magenta or cyan pixel of their own)."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(320, 240), (256, 256), (300, 400)]):
        base = rng.integers(60, 190, (h // 16 + 1, w // 16 + 1, 1), dtype=np.uint8)
        rgb = np.repeat(base, 3, axis=2) + rng.integers(0, 20, (1, 1, 3), dtype=np.uint8)
        path = folder / f"img{i}.png"
        Image.fromarray(rgb).resize((w, h), Image.Resampling.BICUBIC).save(path)
        paths.append(path)
    return paths


def _verdicts(
    info: Any, preds: list[Prediction], paths: list[Path], policy: DecisionPolicy
) -> list[Verdict]:
    """Verdicts as the service builds their decision fields, from the model's predictions."""
    out = []
    for i, (path, pred) in enumerate(zip(paths, preds, strict=True)):
        fields = verdict_fields(pred.score, pred.threshold, None, policy, None, info.decision_band)
        patches = [
            Patch.model_validate(
                {"rank": p.rank, "box": p.box, "window": p.window,
                 "activation": p.activation, "attention": p.attention}
            )
            for p in pred.patches
        ]  # fmt: skip
        image = ImageInfo(sha256="0" * 64, width=pred.width, height=pred.height, format="PNG",
                          size_bytes=path.stat().st_size)  # fmt: skip
        verdict = make_verdict(pred.score, pred.threshold, event_id=f"ev-{i}", patches=patches,
                               image=image, model=model_stamp(info), global_attention=0.5,
                               **fields)  # fmt: skip
        out.append(verdict)
    return out


@pytest.fixture(scope="module")
def glff_page(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("glff-page")
    paths = _images(folder)
    detector = Detector.from_checkpoint(GLFF, device="cpu", precision="fp32")
    # a band that makes the page show more than one decision whatever the scores are
    preds = detector.predict(paths)
    scores = sorted(p.score for p in preds)
    policy = DecisionPolicy(uncertain_low=(scores[0] + scores[1]) / 2, uncertain_high=0.999)
    verdicts = _verdicts(detector.info, preds, paths, policy)
    images: dict[str, Path | None] = {v.event_id: p for v, p in zip(verdicts, paths, strict=True)}
    images["bad"] = None  # an event that became a dead letter
    page = write_html(verdicts, [], images, folder / "out")
    return {"verdicts": verdicts, "images": images, "page": page}


def test_the_page_agrees_with_the_verdict_events(glff_page: dict[str, Any]) -> None:
    verdicts, page = glff_page["verdicts"], glff_page["page"].read_text()
    assert disagreements(page, verdicts, len(glff_page["images"]), 0) == []
    read = read_page(page)
    assert read.decisions == {v.event_id: v.decision for v in verdicts}
    assert len(set(read.decisions.values())) >= 2
    assert read.summary == summary(4, verdicts, 0)
    assert f"({counts(verdicts)['synthetic']} synthetic, " in read.summary
    for v in verdicts:  # the heading leads with the decision, the label follows as the cut
        assert read.headings[v.event_id].startswith(f"{v.decision}: ")
    wrong = [v.model_copy(update={"decision": "real"}) for v in verdicts]
    assert disagreements(page, wrong, 4, 0)  # the check can fail


def test_glff_patch_boxes_are_drawn_and_the_table_filled(glff_page: dict[str, Any]) -> None:
    page = glff_page["page"].read_text()
    read = read_page(page)
    for v in glff_page["verdicts"]:
        assert len(v.patches) == 6
        assert read.rects[v.event_id] == 6 and read.tables[v.event_id] == 1
    assert page.count("<tr><td>#") == 18 and NO_PATCHES not in page


def test_a_global_only_model_says_no_patch_evidence_once_and_draws_no_table(
    tmp_path: Path,
) -> None:
    paths = _images(tmp_path)
    verdicts = [
        make_verdict(
            0.3 + 0.2 * i,
            event_id=f"g{i}",
            patches=[],
            decision="real",
            image=ImageInfo(sha256="0" * 64, width=64, height=64, format="PNG", size_bytes=1),
        )
        for i in range(3)
    ]
    verdicts = [
        v.model_copy(update={"model": v.model.model_copy(update={"patch_strategy": "none"})})
        for v in verdicts
    ]
    page = write_html(verdicts, [], {v.event_id: p for v, p in zip(verdicts, paths, strict=True)},
                      tmp_path / "out").read_text()  # fmt: skip
    assert page.count(NO_PATCHES) == 1
    assert "<th>rank</th>" not in page and "<rect" not in page


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("SYNTHSCAN_REQUIRE_CHROMIUM") == "1":
        pytest.fail("chromium not found (make chromium)")
    return found


def _screenshot(page: Path, out: Path) -> np.ndarray:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium not installed (make chromium)")
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={out.parent / 'profile'}", f"--screenshot={out}",
         "--window-size=1000,3000", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return np.asarray(Image.open(out).convert("RGB"))


def _pixels(shot: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((np.abs(shot.astype(int) - colour).sum(axis=2) < 60).sum())


def test_the_boxes_are_drawn_in_headless_chromium(
    glff_page: dict[str, Any], tmp_path: Path
) -> None:
    shot = _screenshot(glff_page["page"], tmp_path / "glff.png")
    windows = {p.window for v in glff_page["verdicts"] for p in v.patches}
    assert 3 in windows and _pixels(shot, MAGENTA) > 200  # the 3x3 windows' boxes
    if 2 in windows:
        assert _pixels(shot, CYAN) > 200
    plain = glff_page["page"].read_text().replace("<rect ", "<rect style='display:none' ")
    hidden = tmp_path / "plain.html"
    hidden.write_text(plain)
    shot = _screenshot(hidden, tmp_path / "plain.png")
    assert _pixels(shot, MAGENTA) == 0 and _pixels(shot, CYAN) == 0  # the colours are the boxes
