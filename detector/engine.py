"""Inference engine: checkpoint -> :class:`Detector` -> per-image :class:`Prediction`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
import torchvision
from PIL import Image

from detector.batching import collate_images, group_by_size
from detector.checkpoint import CheckpointMetadata, file_sha256, load_checkpoint
from detector.decode import DecodedImage, ImageInput, decode_image
from detector.errors import CheckpointError, DetectorError
from detector.fuse import inference_copy, resolve_runtime
from detector.model import GLFF, GLFFOutput, GlobalOnly
from detector.options import EngineOptions, with_knobs
from detector.runtime import prefetch

if TYPE_CHECKING:
    from detector.adapters import Adapter, Attribution

__all__ = ["Detector", "ModelInfo", "PatchEvidence", "Prediction"]

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True, slots=True)
class PatchEvidence:
    """One selected patch: why the model looked there and how much it counted.

    rank: 1..K by ``attention`` (descending). box: ``(x0, y0, x1, y1)`` in original pixels.
    window: 3 (224 px patch) or 2 (112 px patch); 0 for the fixed ``rsz448`` crops.
    activation: mean feature activation of the window. attention: weight the global token gave
    this patch in the last fusion layer (head-averaged; all K + 1 weights sum to 1).
    """

    rank: int
    box: tuple[int, int, int, int]
    window: int
    activation: float
    attention: float


@dataclass(frozen=True, slots=True)
class Prediction:
    """The verdict for one image."""

    score: float
    is_synthetic: bool
    threshold: float
    patches: list[PatchEvidence]
    global_attention: float
    width: int
    height: int
    attribution: Attribution | None = None
    """Per-generator scores when adapters are loaded (then ``score`` is the combined one)."""
    model_info: ModelInfo | None = field(default=None, compare=False, repr=False)
    """The model that produced this prediction (differs across a hot reload)."""

    @property
    def label(self) -> Literal["synthetic", "real"]:
        """``synthetic`` when ``is_synthetic`` (``score >= threshold``), else ``real``."""
        return "synthetic" if self.is_synthetic else "real"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("model_info", None)
        if self.attribution is None:
            data.pop("attribution", None)
        return data


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """One loaded adapter, for stamps and logs."""

    generator: str
    sha256: str
    method: str
    threshold: float


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What model is serving, for logs, metrics and verdicts."""

    name: str
    version: str
    arch: str
    backbone: str
    patch_strategy: str
    weights_sha256: str
    threshold: float
    preprocessing_version: str
    input_size: int
    torch_version: str
    torchvision_version: str
    device: str
    precision: str
    adapters: tuple[AdapterInfo, ...] = ()
    decision_band: tuple[float, float] | None = None
    """The checkpoint's calibrated ``(real_below, synthetic_from)`` edges, None when absent."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_info(
    metadata: CheckpointMetadata,
    weights_sha256: str,
    device: torch.device,
    precision: str,
    adapters: Sequence[Adapter],
) -> ModelInfo:
    cfg = metadata.config
    return ModelInfo(
        name=metadata.name,
        version=metadata.version,
        arch=cfg.arch,
        backbone=cfg.backbone,
        patch_strategy=cfg.patch_strategy,
        weights_sha256=weights_sha256,
        threshold=metadata.threshold,
        preprocessing_version=metadata.preprocessing_version,
        input_size=cfg.input_size,
        torch_version=torch.__version__,
        torchvision_version=torchvision.__version__,
        device=str(device),
        precision=precision,
        adapters=tuple(
            AdapterInfo(a.name, a.sha256, a.metadata.method, a.threshold) for a in adapters
        ),
        decision_band=metadata.band_edges(),
    )


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DetectorError("device 'cuda' requested but CUDA is not available")
    return resolved


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision not in PRECISIONS:
        raise DetectorError(f"precision {precision!r} not in {sorted(PRECISIONS)} or 'auto'")
    if precision == "fp16" and device.type != "cuda":
        raise DetectorError("fp16 needs CUDA; use fp32 or bf16 on CPU")
    return precision


class Detector:
    """A loaded model that scores images of any size and mode.

    Example::

        det = Detector.from_checkpoint("glff.safetensors", device="auto")
        for p in det.predict(["a.jpg", Path("b.png"), png_bytes, pil_image]):
            print(p.score, p.is_synthetic, [q.box for q in p.patches])
    """

    def __init__(
        self,
        model: GLFF | GlobalOnly,
        metadata: CheckpointMetadata,
        options: EngineOptions | None = None,
        *,
        weights_sha256: str = "",
        adapters: Sequence[Adapter] = (),
        **knobs: Any,
    ) -> None:
        """``knobs``: :class:`EngineOptions` fields that replace those of ``options``."""
        self.options = options = with_knobs(options, knobs)
        self.device = _resolve_device(options.device)
        self.precision = _resolve_precision(options.precision, self.device)
        try:
            runtime = resolve_runtime(options.runtime, self.device, self.precision)
        except ValueError as exc:
            raise DetectorError(str(exc)) from exc
        if runtime == "onnxruntime" and (self.device.type != "cpu" or self.precision != "fp32"):
            raise DetectorError("runtime 'onnxruntime' needs device cpu and precision fp32")
        self.runtime = runtime
        self.metadata = metadata
        deterministic = options.deterministic
        if adapters and runtime != "eager":
            # adapters split the trunk by module index (detector.adapters.tail), which the
            # folded / ONNX Runtime copies do not keep: serve base + adapters unfolded
            log.info("runtime %r -> 'eager': adapters need the unfolded trunk", runtime)
            runtime = self.runtime = "eager"
        # an optimized copy (batch norm folded, maybe ONNX Runtime); ``model`` is left untouched
        try:
            model = cast(GLFF | GlobalOnly, inference_copy(model, runtime, device=self.device))
        except (RuntimeError, ValueError) as exc:
            raise DetectorError(f"runtime {runtime!r}: {exc}") from exc
        model = model.to(self.device)
        channels_last = options.channels_last
        if channels_last is None:
            channels_last = self.device.type == "cuda"
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            model.channels_last = True
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not deterministic
            if deterministic:
                torch.backends.cudnn.deterministic = True
        if isinstance(model, GLFF) and deterministic:
            model.generator = torch.Generator(device=self.device).manual_seed(0)
        self.model = model
        self.adapters = list(adapters)
        self._split = self.adapters[0].metadata.split if self.adapters else 0
        if any(a.metadata.split != self._split for a in self.adapters):
            raise DetectorError("all adapters must split the model at the same trunk module")
        for adapter in self.adapters:
            adapter.tail.to(self.device)
        self.info = _model_info(metadata, weights_sha256, self.device, self.precision, adapters)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        options: EngineOptions | None = None,
        adapters: Sequence[str | Path] = (),
        **knobs: Any,
    ) -> Detector:
        """Load a safetensors checkpoint (see :mod:`detector.checkpoint`), refused with
        :class:`CheckpointError` unless its sha256 is ``options.checkpoint_sha256`` (when set),
        and optional adapter files (:mod:`detector.adapters`), each checked against the
        checkpoint's sha256; never unpickles. ``knobs``: :class:`EngineOptions` fields that
        replace those of ``options``."""
        options = with_knobs(options, knobs)
        model, metadata = load_checkpoint(path)
        sha = file_sha256(path)
        expected = options.checkpoint_sha256
        if expected is not None and sha != expected.lower():
            raise CheckpointError(f"checkpoint sha256 {sha} != expected {expected}")
        loaded = []
        if adapters:
            from detector.adapters import load_adapter

            loaded = [load_adapter(a, model, sha) for a in adapters]
        return cls(model, metadata, options, weights_sha256=sha, adapters=loaded)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    def with_threshold(self, threshold: float) -> Detector:
        """A detector sharing these weights that labels at ``threshold`` (e.g. a candidate
        calibration); this one is left unchanged."""
        if not 0.0 <= threshold <= 1.0:
            raise DetectorError(f"threshold {threshold} outside [0, 1]")
        other = copy.copy(self)
        other.metadata = dataclasses.replace(self.metadata, threshold=threshold)
        other.info = dataclasses.replace(self.info, threshold=threshold)
        return other

    def warmup(self) -> None:
        """Run one small batch so that the first real request pays no start-up cost."""
        image = torch.zeros(3, 256, 256, dtype=torch.uint8)
        self._run([image, image])

    def _run(self, pixels_list: Sequence[torch.Tensor]) -> GLFFOutput:
        return self._run_all(pixels_list)[0]

    def _run_all(self, pixels_list: Sequence[torch.Tensor]) -> tuple[GLFFOutput, torch.Tensor]:
        """Base outputs and adapter logits ``[B, A]`` (``A`` = 0 without adapters)."""
        # the CPU views of RGB inputs never read the padding (detector.crops.resample_views)
        reads_padding = (
            self.device.type != "cpu"
            or self.metadata.config.input_repr != "rgb"
            or getattr(self.model, "reference_crops", True)
        )
        pixels, sizes = collate_images(pixels_list, zero_padding=reads_padding)
        pixels = pixels.to(self.device, non_blocking=True)
        with torch.inference_mode(), self._autocast():
            if self.adapters:
                from detector.adapters.multi import forward_with_adapters

                out, extra = forward_with_adapters(
                    self.model, self._split, self.adapters, pixels, sizes.to(self.device)
                )
            else:
                out = self.model(pixels, sizes.to(self.device))
                extra = out.logits.new_zeros(out.logits.shape[0], 0)
        cpu = GLFFOutput(*(t.float().cpu() if t.is_floating_point() else t.cpu() for t in out))
        return cpu, extra.float().cpu()

    def predict(self, images: Sequence[DecodedImage | ImageInput]) -> list[Prediction]:
        """Score images of any sizes and modes, in input order.

        Inputs that are not yet decoded are decoded with ``options.limits``,
        ``options.max_batch_size`` at a time in a background thread while the previous ones are
        computed; a bad one raises its :class:`~detector.ImageError` (decode with
        :func:`decode_image` first to handle images one by one). Images are grouped by size so
        that padding stays small.

        Raises:
            TypeError: ``images`` is one image (a path, bytes, ...) instead of a sequence.
        """
        if isinstance(images, str | bytes | os.PathLike | Image.Image | DecodedImage):
            raise TypeError(f"predict takes a list of images, not one {type(images).__name__}")
        decoded = [im for im in images if isinstance(im, DecodedImage)]
        if len(decoded) == len(images):
            return self._predict_decoded(decoded)
        step = self.options.max_batch_size
        chunks = (
            [
                im if isinstance(im, DecodedImage) else decode_image(im, self.options.limits)
                for im in part
            ]
            for part in (images[i : i + step] for i in range(0, len(images), step))
        )
        return [p for chunk in prefetch(chunks) for p in self._predict_decoded(chunk)]

    def _predict_decoded(self, decoded: Sequence[DecodedImage]) -> list[Prediction]:
        results: list[Prediction | None] = [None] * len(decoded)
        sizes = [(d.height, d.width) for d in decoded]
        for group in group_by_size(
            sizes, self.options.max_batch_size, self.options.max_padded_pixels
        ):
            out, extra = self._run_all([decoded[i].pixels for i in group])
            for row, index in enumerate(group):
                results[index] = self._prediction(out, row, decoded[index], extra[row])
        return [r for r in results if r is not None]

    def _attribution(self, score: float, adapter_logits: torch.Tensor) -> Attribution:
        from detector.adapters.multi import AdapterScore, combine

        heads = []
        for adapter, logit in zip(self.adapters, adapter_logits.tolist(), strict=True):
            s = float(torch.sigmoid(torch.tensor(logit)))
            heads.append(
                AdapterScore(
                    adapter.name, s, adapter.threshold, s >= adapter.threshold, adapter.sha256
                )
            )
        return combine(score, self.metadata.threshold, heads)

    def _prediction(
        self,
        out: GLFFOutput,
        row: int,
        image: DecodedImage,
        adapter_logits: torch.Tensor | None = None,
    ) -> Prediction:
        score = float(torch.sigmoid(out.logits[row]))
        threshold = self.metadata.threshold
        attribution = None
        if self.adapters and adapter_logits is not None:
            attribution = self._attribution(score, adapter_logits)
            score = attribution.score
        attention = out.attention[row].tolist()
        k = out.boxes.shape[1]
        order = sorted(range(k), key=lambda j: -attention[j])
        boxes = out.boxes[row].round().long().tolist()
        windows = out.windows[row].tolist()
        activations = out.activations[row].tolist()
        patches = [
            PatchEvidence(
                rank=rank,
                box=(boxes[j][0], boxes[j][1], boxes[j][2], boxes[j][3]),
                window=int(windows[j]),
                activation=float(activations[j]),
                attention=float(attention[j]),
            )
            for rank, j in enumerate(order, start=1)
        ]
        return Prediction(
            score=score,
            is_synthetic=score >= threshold,
            threshold=threshold,
            patches=patches,
            global_attention=float(attention[k]),
            width=image.width,
            height=image.height,
            attribution=attribution,
            model_info=self.info,
        )
