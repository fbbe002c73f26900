"""Few-shot adapters: exact tail split, LoRA fast path, adapter files, attribution, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector import CheckpointError, Detector
from detector.adapters import AdapterScore, combine, load_adapter
from detector.adapters.multi import forward_with_adapters
from detector.adapters.tail import Tail, default_split
from detector.adapters.train import AdaptConfig, FeatureSet, precompute, score, train
from detector.checkpoint import file_sha256
from detector.cli import main
from detector.model import GLFF


def _pixels(seed: int, n: int = 2, h: int = 120, w: int = 160) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    px = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    return px, torch.tensor([[h, w]] * n)


def test_tail_split_reproduces_the_model_exactly(small_model: GLFF) -> None:
    px, sizes = _pixels(0)
    split = default_split(small_model)
    with torch.no_grad():
        out = small_model(px, sizes)
        maps = small_model.forward_trunk(px, sizes, split=split)
        logits, attention = Tail.of(small_model, split, copy_weights=False)(
            maps.global_map, maps.local_maps
        )
    torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention, out.attention, atol=1e-6, rtol=0)
    torch.testing.assert_close(maps.selection.boxes, out.boxes)


@pytest.mark.parametrize("method", ["head", "lora"])
def test_fast_path_matches_the_generic_tail(small_model: GLFF, method: str) -> None:
    split = default_split(small_model)
    base = Tail.of(small_model, split, copy_weights=True)
    torch.manual_seed(0)
    feats = torch.rand(6, 7, 320, 7, 7).half()
    data = FeatureSet(feats, precompute(base, feats))
    trained = train(base, data, torch.tensor([0, 1] * 3), AdaptConfig(method, rank=2, steps=3))
    fast, slow = score(trained.tail, data, use_pre=True), score(trained.tail, data, use_pre=False)
    torch.testing.assert_close(fast, slow, atol=2e-3, rtol=0)
    # training moved the adapter away from the base
    assert not torch.allclose(fast, score(base, data, use_pre=False), atol=1e-4)


def test_combine_is_the_or_of_the_heads_as_one_score() -> None:
    alone = combine(0.3, 0.5, [])
    assert (alone.score, alone.is_synthetic, alone.generator) == (0.3, False, None)
    fires = combine(0.3, 0.5, [AdapterScore("sdxl", 0.9, 0.8, True)])
    assert fires.is_synthetic and fires.generator == "sdxl" and fires.score >= 0.5
    # 0.9 vs threshold 0.8 is the same margin as logit(0.9)-logit(0.8) over the base's 0.5
    assert math.isclose(math.log(fires.score / (1 - fires.score)), math.log(9) - math.log(4))
    quiet = combine(0.3, 0.5, [AdapterScore("sdxl", 0.7, 0.8, False)])
    assert not quiet.is_synthetic and quiet.generator is None and quiet.score < 0.5
    base_wins = combine(0.99, 0.5, [AdapterScore("sdxl", 0.81, 0.8, True)])
    assert base_wins.generator is None and base_wins.score == 0.99
    assert [s.generator for s in fires.scores] == ["base", "sdxl"]


def _folder(root: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for label in ("0_real", "1_fake"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
            if label == "1_fake":  # a visible signature: a smooth, bright image
                arr = (arr // 8 + 200).astype(np.uint8)
            Image.fromarray(arr).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def adapter_file(tmp_path_factory: pytest.TempPathFactory, small_checkpoint: Path) -> Path:
    data = _folder(tmp_path_factory.mktemp("newgen"))
    out = tmp_path_factory.mktemp("adapters") / "newgen.safetensors"
    code = main(
        [
            "adapt", "--base", str(small_checkpoint), "--data", str(data),
            "--generator", "newgen", "--shots", "3", "--method", "lora", "--rank", "2",
            "--steps", "4", "--seed", "1", "--out", str(out), "--no-progress",
            "--base-sha256", file_sha256(small_checkpoint),
        ]
    )  # fmt: skip
    assert code == 0
    return out


def test_adapt_writes_a_bound_adapter_with_metadata(
    adapter_file: Path, small_checkpoint: Path, small_model: GLFF
) -> None:
    adapter = load_adapter(adapter_file, small_model, file_sha256(small_checkpoint))
    meta = adapter.metadata
    assert (meta.generator, meta.method, meta.rank, meta.shots, meta.seed) == (
        "newgen",
        "lora",
        2,
        3,
        1,
    )
    assert meta.base_sha256 == file_sha256(small_checkpoint)
    assert len(meta.data["fakes"]) == 3 and len(meta.data["reals"]) == 3
    with pytest.raises(CheckpointError, match="made for base"):
        load_adapter(adapter_file, small_model, "0" * 64)


def test_adapt_refuses_a_base_with_another_sha256(
    tmp_path: Path, small_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "adapt", "--base", str(small_checkpoint), "--data", str(_folder(tmp_path)),
            "--generator", "g", "--shots", "2", "--out", str(tmp_path / "a.safetensors"),
            "--base-sha256", "f" * 64,
        ]
    )  # fmt: skip
    assert code != 0
    assert "sha256" in capsys.readouterr().err
    assert not (tmp_path / "a.safetensors").exists()


def test_corrupt_and_pickled_adapters_are_refused(
    tmp_path: Path, adapter_file: Path, small_model: GLFF, small_checkpoint: Path
) -> None:
    sha = file_sha256(small_checkpoint)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(adapter_file.read_bytes()[:-100])
    pickled = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, pickled)
    for bad in (corrupt, pickled):
        with pytest.raises(CheckpointError):
            load_adapter(bad, small_model, sha)


def test_detector_with_adapters_scores_base_and_adapter_in_one_pass(
    adapter_file: Path, small_checkpoint: Path, make_png: object
) -> None:
    plain = Detector.from_checkpoint(small_checkpoint, device="cpu")
    twice = Detector.from_checkpoint(
        small_checkpoint, device="cpu", adapters=[adapter_file, adapter_file]
    )
    images = [make_png(100, 140, seed=s) for s in range(3)]  # type: ignore[operator]
    base_preds, preds = plain.predict(images), twice.predict(images)
    for b, p in zip(base_preds, preds, strict=True):
        assert p.attribution is not None and b.attribution is None
        base_score = p.attribution.scores[0]
        assert base_score.generator == "base"
        assert math.isclose(base_score.score, b.score, abs_tol=1e-5)
        assert [s.generator for s in p.attribution.scores] == ["base", "newgen", "newgen"]
        assert p.is_synthetic == any(s.is_synthetic for s in p.attribution.scores)
        assert p.is_synthetic == (p.score >= p.threshold)
        assert sorted(q.box for q in p.patches) == sorted(q.box for q in b.patches)
        assert p.model_info is twice.info
    assert [a.generator for a in twice.info.adapters] == ["newgen", "newgen"]
    # the adapter's own head equals a standalone adapted model on the same views
    adapter = twice.adapters[0]
    px, sizes = _pixels(3, n=1)
    model = twice.model
    assert isinstance(model, GLFF)
    _, extra = forward_with_adapters(model, adapter.metadata.split, [adapter], px, sizes)
    maps = model.forward_trunk(px, sizes, split=adapter.metadata.split)
    with torch.no_grad():
        alone = adapter.tail(maps.global_map, maps.local_maps)[0]
    torch.testing.assert_close(extra[:, 0], alone)


def test_predict_cli_prints_attribution(
    tmp_path: Path, adapter_file: Path, small_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.png"
    Image.fromarray(np.full((80, 90, 3), 128, np.uint8)).save(image)
    args = ["predict", "--checkpoint", str(small_checkpoint), "--adapter", str(adapter_file)]
    assert main([*args, str(image)]) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert [s["generator"] for s in record["attribution"]["scores"]] == ["base", "newgen"]
    assert record["is_synthetic"] == (record["score"] >= record["threshold"])
