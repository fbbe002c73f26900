"""Inference engine: mixed sizes, modes and input kinds; evidence; grouping; settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from detector import (
    CheckpointError,
    DecodedImage,
    Detector,
    DetectorError,
    EngineOptions,
    ImageDecodeError,
    PatchEvidence,
    Prediction,
    decode_image,
)
from detector.checkpoint import CheckpointMetadata, file_sha256, load_checkpoint
from detector.model import ModelConfig, build_model
from tests.detector.imaging import encode, random_array


@pytest.fixture(scope="module")
def detector(small_checkpoint: Path) -> Detector:
    return Detector.from_checkpoint(small_checkpoint, device="cpu", precision="fp32")


def _inputs(tmp_path: Path) -> list[object]:
    jpeg = tmp_path / "wide.jpg"
    Image.fromarray(random_array(120, 400, seed=1)).save(jpeg)
    return [
        encode(Image.fromarray(random_array(300, 200, seed=2)).convert("RGBA")),  # bytes, RGBA
        jpeg,  # path, JPEG
        Image.fromarray(random_array(64, 64, seed=3)).convert("L"),  # PIL, grayscale
        decode_image(encode(Image.fromarray(random_array(90, 50, seed=4)).convert("P"))),
        encode(Image.fromarray(random_array(500, 350, seed=5)), "JPEG"),
    ]


def test_predict_mixed_sizes_and_modes(detector: Detector, tmp_path: Path) -> None:
    preds = detector.predict(_inputs(tmp_path))  # type: ignore[arg-type]
    assert [(p.width, p.height) for p in preds] == [
        (200, 300),
        (400, 120),
        (64, 64),
        (50, 90),
        (350, 500),
    ]
    for p in preds:
        assert isinstance(p, Prediction) and 0.0 <= p.score <= 1.0
        assert p.threshold == 0.4 and p.is_synthetic == (p.score >= 0.4)
        assert [q.rank for q in p.patches] == [1, 2, 3, 4, 5, 6]
        assert sorted(q.window for q in p.patches) == [2, 2, 2, 3, 3, 3]
        attentions = [q.attention for q in p.patches]
        assert attentions == sorted(attentions, reverse=True)
        assert sum(attentions) + p.global_attention == pytest.approx(1.0, abs=1e-4)
        for q in p.patches:
            assert isinstance(q, PatchEvidence) and all(isinstance(v, int) for v in q.box)
            x0, y0, x1, y1 = q.box
            assert 0 <= x0 < x1 <= p.width and 0 <= y0 < y1 <= p.height
            assert x1 - x0 == min(224 if q.window == 3 else 112, p.width, p.height)


def test_grouping_does_not_change_results(small_checkpoint: Path, tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    big = Detector.from_checkpoint(small_checkpoint, device="cpu").predict(inputs)  # type: ignore[arg-type]
    one = Detector.from_checkpoint(small_checkpoint, device="cpu", max_batch_size=1)
    for a, b in zip(big, one.predict(inputs), strict=True):  # type: ignore[arg-type]
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert sorted(q.box for q in a.patches) == sorted(q.box for q in b.patches)


def test_info(detector: Detector) -> None:
    info = detector.info
    assert (info.name, info.version, info.arch, info.backbone) == (
        "test-small",
        "1.2.3",
        "glff",
        "mobilenet_v2",
    )
    assert (info.patch_strategy, info.device, info.precision, info.input_size) == (
        "psm",
        "cpu",
        "fp32",
        224,
    )
    assert len(info.weights_sha256) == 64 and info.to_dict()["threshold"] == 0.4


def test_bad_input_raises_a_typed_error(detector: Detector) -> None:
    with pytest.raises(ImageDecodeError):
        detector.predict([b"definitely not an image"])
    detector.warmup()


def test_global_only_baseline_has_no_patches() -> None:
    config = ModelConfig(arch="global_only", backbone="mobilenet_v2", patch_strategy="none")
    model = build_model(config)
    det = Detector(model, CheckpointMetadata(config=model.config), device="cpu")
    (pred,) = det.predict([Image.fromarray(random_array(80, 80))])
    assert pred.patches == [] and pred.global_attention == 1.0


def test_random_strategy_is_repeatable_when_deterministic() -> None:
    model = build_model(ModelConfig(backbone="mobilenet_v2", patch_strategy="random"))
    image = [decode_image(encode(Image.fromarray(random_array(400, 400))))]
    boxes = []
    for _ in range(2):
        det = Detector(
            model, CheckpointMetadata(config=model.config), device="cpu", deterministic=True
        )
        boxes.append([q.box for q in det.predict(image)[0].patches])
    assert boxes[0] == boxes[1]


def test_bf16_on_cpu_runs_and_fp16_on_cpu_is_refused(small_checkpoint: Path) -> None:
    det = Detector.from_checkpoint(small_checkpoint, device="cpu", precision="bf16")
    image: DecodedImage = decode_image(encode(Image.fromarray(random_array(64, 64))))
    assert 0.0 <= det.predict([image])[0].score <= 1.0
    with pytest.raises(DetectorError, match="fp16"):
        Detector.from_checkpoint(small_checkpoint, device="cpu", precision="fp16")
    model, meta = load_checkpoint(small_checkpoint)
    with pytest.raises(DetectorError):
        Detector(model, meta, device="cpu", precision="fp64")


def test_empty_list_and_smallest_image(detector: Detector) -> None:
    assert detector.predict([]) == []
    (pred,) = detector.predict([Image.fromarray(random_array(32, 32))])
    assert (pred.width, pred.height) == (32, 32)
    assert all(q.box == (0, 0, 32, 32) for q in pred.patches)


class _PathLike:
    """A path-like that is not a :class:`Path` (``os.PathLike[str]``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


def test_str_and_path_like_paths_are_images(detector: Detector, tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(random_array(80, 120, seed=7)).save(path)
    by_path, by_str, by_fspath = detector.predict([path, str(path), _PathLike(path)])
    assert by_path.score == by_str.score == by_fspath.score
    assert (by_str.width, by_str.height) == (120, 80)


@pytest.mark.parametrize("one", ["a.jpg", b"\x89PNG", Path("a.jpg")])
def test_one_image_instead_of_a_list_is_a_clear_error(detector: Detector, one: object) -> None:
    with pytest.raises(TypeError, match="list of images"):
        detector.predict(one)  # type: ignore[arg-type]


def test_engine_options_are_one_object_and_keywords_replace_its_fields(
    small_checkpoint: Path,
) -> None:
    options = EngineOptions(device="cpu", precision="fp32", max_batch_size=3)
    det = Detector.from_checkpoint(small_checkpoint, options, runtime="eager")
    assert det.options == dataclasses.replace(options, runtime="eager")
    assert Detector.from_checkpoint(small_checkpoint, device="cpu").options.max_batch_size == (
        EngineOptions().max_batch_size
    )
    with pytest.raises(DetectorError, match="no_such_knob"):
        Detector.from_checkpoint(small_checkpoint, device="cpu", no_such_knob=1)
    with pytest.raises(DetectorError, match="device 'gpu'"):
        Detector.from_checkpoint(small_checkpoint, device="gpu")


def test_a_checkpoint_whose_sha256_is_not_the_expected_one_is_refused(
    small_checkpoint: Path,
) -> None:
    sha = file_sha256(small_checkpoint)
    ok = Detector.from_checkpoint(small_checkpoint, device="cpu", checkpoint_sha256=sha.upper())
    assert ok.info.weights_sha256 == sha
    with pytest.raises(CheckpointError, match=f"{sha} != expected {'0' * 64}"):
        Detector.from_checkpoint(small_checkpoint, device="cpu", checkpoint_sha256="0" * 64)
