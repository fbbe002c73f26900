"""Inference copies of a model: batch norm folded into convolutions, optionally ONNX Runtime.

The training model is never changed: :func:`inference_copy` deep-copies it and replaces only the
backbone(s) (``model.backbone`` and, when present, ``model.local_backbone``), whose input is a
``[N, C, 224, 224]`` float tensor whatever the model does before it. Runtimes:

- ``"reference"``: the copy as it is, with crops by ``roi_align`` on the padded batch converted to
  float (``model.reference_crops``): the engine before any CPU optimization (benchmarks, parity);
- ``"eager"``: the copy as it is (unfolded; CPU crops resampled from the uint8 pixels);
- ``"torch"``: every ``Conv2d -> BatchNorm2d`` pair folded into one convolution
  (``torch.fx.experimental.optimization.fuse``); a backbone that cannot be traced, or has no
  such pair, is kept as it is;
- ``"onnxruntime"``: the folded backbone exported to ONNX (legacy exporter, dynamic batch) and run
  by ONNX Runtime's CPU provider (the ``onnx`` extra). CPU and fp32 only.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["RUNTIMES", "ChunkedBackbone", "OnnxBackbone", "fold_batchnorm", "inference_copy"]

log = logging.getLogger(__name__)

RUNTIMES = ("reference", "eager", "torch", "onnxruntime")
CPU_CHUNK = 2  # crops per backbone call on the CPU (measured, see ChunkedBackbone)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` with each ``Conv2d -> BatchNorm2d`` folded into the conv.

    Returns an unfolded copy (and logs why) when the module cannot be traced by ``torch.fx``.
    """
    from torch.fx.experimental.optimization import fuse

    source = copy.deepcopy(module).eval()
    try:
        folded: nn.Module = fuse(source, inplace=True)
    except Exception as exc:
        log.warning("batch norm not folded (%s: %s)", type(exc).__name__, exc)
        return copy.deepcopy(module).eval()
    for attr in ("name", "out_channels"):  # keep the Backbone attributes callers read
        if hasattr(module, attr):
            setattr(folded, attr, getattr(module, attr))
    return folded


class OnnxBackbone(nn.Module):
    """A backbone run by ONNX Runtime: ``forward(x [N, C, H, W] float32) -> feature map``."""

    def __init__(self, backbone: nn.Module, example: torch.Tensor, threads: int) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise RuntimeError(
                "runtime 'onnxruntime' needs the onnx extra: pip install 'synthscan[onnx]'"
            ) from exc
        self.name = getattr(backbone, "name", "backbone")
        self.out_channels = getattr(backbone, "out_channels", 0)
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                backbone.float().eval(),
                (example.float().contiguous(),),
                buffer,  # type: ignore[arg-type]  # a file object is accepted
                input_names=["x"],
                output_names=["features"],
                dynamic_axes={"x": {0: "n"}, "features": {0: "n"}},
                opset_version=17,
                dynamo=False,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            buffer.getvalue(), options, providers=["CPUExecutionProvider"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (out,) = self.session.run(["features"], {"x": array})
        return torch.from_numpy(np.asarray(out))


class ChunkedBackbone(nn.Module):
    """Runs a backbone on at most ``chunk`` crops at a time (CPU: smaller activations stay in
    cache). Measured on the 2-vCPU VM, one thread, process CPU time per crop: MobileNetV2 on
    ONNX Runtime 11.5 ms in chunks of 1 or 2, 13.1 at 4, 13.4 at 8; ResNet-50 flat (130-136 ms
    at 1-4). ``channels_last``: inputs are converted per chunk (for a trunk converted to it)."""

    def __init__(self, backbone: nn.Module, chunk: int, channels_last: bool = False) -> None:
        super().__init__()
        self.inner = backbone
        self.chunk = max(1, chunk)
        self.channels_last = channels_last
        self.name = getattr(backbone, "name", "backbone")
        self.out_channels = getattr(backbone, "out_channels", 0)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.inner(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] <= self.chunk:
            return self._run(x)
        return torch.cat([self._run(part) for part in x.split(self.chunk)])


def _replace_backbones(model: nn.Module, make: Any) -> None:
    for attr in ("backbone", "local_backbone"):
        backbone = getattr(model, attr, None)
        if isinstance(backbone, nn.Module):
            setattr(model, attr, make(backbone))


def inference_copy(
    model: nn.Module,
    runtime: str = "torch",
    *,
    device: torch.device | None = None,
    cpu_chunk: int = CPU_CHUNK,
) -> nn.Module:
    """An eval-mode deep copy of ``model`` with its backbone(s) optimized for ``runtime``.

    On the CPU (``device`` None or cpu) the optimized backbones run ``cpu_chunk`` crops at a
    time (0: whole batches), the folded torch one in channels_last. ``model`` itself is left
    exactly as it was (weights, buffers, mode).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r} not in {RUNTIMES}")
    copied = copy.deepcopy(model).eval()
    if runtime == "reference":
        copied.reference_crops = True  # type: ignore[assignment]
    if runtime in ("eager", "reference"):
        return copied
    if runtime == "onnxruntime":
        if device is not None and device.type != "cpu":
            raise ValueError("runtime 'onnxruntime' runs on the CPU only")
        size = int(getattr(getattr(model, "config", None), "input_size", 224))
        channels = _input_channels(model)
        example = torch.zeros(1, channels, size, size)
        threads = torch.get_num_threads()
        _replace_backbones(copied, lambda b: OnnxBackbone(fold_batchnorm(b), example, threads))
    else:
        _replace_backbones(copied, fold_batchnorm)
    if cpu_chunk > 0 and (device is None or device.type == "cpu"):
        # the folded torch trunk in channels_last: measured per crop in chunks of 2,
        # MobileNetV2 25 vs 31 ms, ResNet-50 204 vs 216 ms (docs/detector.md)
        cl = runtime == "torch"
        _replace_backbones(
            copied,
            lambda b: ChunkedBackbone(
                b.to(memory_format=torch.channels_last) if cl else b, cpu_chunk, cl
            ),
        )
    return copied


def _input_channels(model: nn.Module) -> int:
    """Channels the backbone expects: those of its first convolution (3 for RGB)."""
    backbone = getattr(model, "backbone", model)
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return 3
