"""Inference copies of a model: batch norm folded into convolutions, optionally ONNX Runtime.

The training model is never changed: :func:`inference_copy` deep-copies it and replaces only the
backbone(s) (``model.backbone`` and, when present, ``model.local_backbone``), whose input is a
``[N, C, 224, 224]`` float tensor whatever the model does before it. Runtimes:

- ``"reference"``: the copy as it is, with crops by ``roi_align`` on the padded batch converted to
  float (``model.reference_crops``): the engine before any CPU optimization (benchmarks, parity);
- ``"eager"``: the copy as it is (unfolded; CPU crops resampled from the uint8 pixels);
- ``"torch"``: every ``Conv2d -> BatchNorm2d`` pair folded into one convolution
  (:func:`fold_batchnorm`, without ``torch.fx``: safe while another model scores on another
  thread); a backbone that cannot be run, or has no such pair, is kept as it is;
- ``"onnxruntime"``: the folded backbone exported to ONNX (legacy exporter, dynamic batch) and run
  by ONNX Runtime's CPU provider (the ``onnx`` extra). CPU and fp32 only.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from detector.options import ENGINE_RUNTIMES

__all__ = [
    "RUNTIMES",
    "ChunkedBackbone",
    "OnnxBackbone",
    "fold_batchnorm",
    "inference_copy",
    "resolve_runtime",
]

log = logging.getLogger(__name__)

RUNTIMES = tuple(name for name in ENGINE_RUNTIMES if name != "auto")
"""What :func:`inference_copy` builds (``auto`` resolves to one of them)."""
CPU_CHUNK = 2  # crops per backbone call on the CPU (measured, see ChunkedBackbone)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` with each ``Conv2d -> BatchNorm2d`` folded into the conv.

    The pairs are found without ``torch.fx``: fx symbolic tracing patches ``nn.Module.__call__``
    for the whole process while it runs, which broke a model scoring on another thread during
    a hot reload (issue 19). Here one forward pass of the private copy on a small zero input,
    with forward hooks on that copy only, records which convolution output each batch norm
    reads; a pair is folded (``torch.nn.utils.fusion.fuse_conv_bn_eval``, the batch norm
    replaced by ``nn.Identity``) only when the batch norm is that output's single user in the
    autograd graph and both modules ran once. Returns an unfolded copy (and logs why) when the
    forward pass fails.
    """
    source = copy.deepcopy(module).eval()
    try:
        pairs = _conv_bn_pairs(source)
    except Exception as exc:
        log.warning("batch norm not folded (%s: %s)", type(exc).__name__, exc)
        return copy.deepcopy(module).eval()
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for conv_name, bn_name in pairs:
        conv = source.get_submodule(conv_name)
        bn = source.get_submodule(bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        _set_submodule(source, conv_name, fuse_conv_bn_eval(conv, bn))
        _set_submodule(source, bn_name, nn.Identity())
    return source


def _set_submodule(root: nn.Module, name: str, value: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, value)


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """``(conv, batch norm)`` qualified names where the batch norm reads only that conv's output
    (see :func:`fold_batchnorm`); ``module`` (a private copy) is run once, in eval mode."""
    conv_out: dict[str, list[Any]] = {}  # name -> grad_fn of each output
    bn_in: dict[str, list[Any]] = {}  # name -> grad_fn of each input
    handles = []
    for name, sub in module.named_modules():
        if type(sub) is nn.Conv2d:
            handles.append(
                sub.register_forward_hook(
                    lambda m, args, out, n=name: conv_out.setdefault(n, []).append(out.grad_fn)
                )
            )
        elif type(sub) is nn.BatchNorm2d:
            handles.append(
                sub.register_forward_hook(
                    lambda m, args, out, n=name: bn_in.setdefault(n, []).append(args[0].grad_fn)
                )
            )
    flags = [(p, p.requires_grad) for p in module.parameters()]
    param = next(module.parameters(), None)
    try:
        for p, _ in flags:
            p.requires_grad_(True)
        example = torch.zeros(1, _input_channels(module), 64, 64)
        if param is not None:
            example = example.to(device=param.device, dtype=param.dtype)
        with torch.inference_mode(False), torch.enable_grad():
            out = module(example)
            users = _edge_counts(out)
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
    producers = {fns[0]: name for name, fns in conv_out.items() if len(fns) == 1}
    pairs = []
    for bn_name, fns in bn_in.items():
        conv_name = producers.get(fns[0]) if len(fns) == 1 and fns[0] is not None else None
        if conv_name is not None and users.get(fns[0], 0) == 1:
            pairs.append((conv_name, bn_name))
    return pairs


def _edge_counts(out: Any) -> dict[Any, int]:
    """How many autograd edges point at each node reachable from ``out`` (tensors, or a
    tuple/list/dict of them): a node with one edge has a single user."""
    tensors: list[torch.Tensor] = []
    stack: list[Any] = [out]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            tensors.append(item)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    counts: dict[Any, int] = {}
    roots = [t.grad_fn for t in tensors if t.grad_fn is not None]
    for root in roots:  # an output read by the caller counts as a user
        counts[root] = counts.get(root, 0) + 1
    seen: set[Any] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for child, _ in node.next_functions:
            if child is not None:
                counts[child] = counts.get(child, 0) + 1
                todo.append(child)
    return counts


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

    def __deepcopy__(self, memo: dict[int, Any]) -> OnnxBackbone:
        """A copy sharing the session (an ONNX Runtime session cannot be deep-copied; it holds
        no mutable state and may run on several threads)."""
        clone = OnnxBackbone.__new__(OnnxBackbone)
        nn.Module.__init__(clone)
        clone.name, clone.out_channels, clone.session = self.name, self.out_channels, self.session
        clone.train(self.training)
        memo[id(self)] = clone
        return clone

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
    """Replace each backbone by ``make(backbone)``, except one that already is an inference
    copy's (the model came from :func:`inference_copy`, e.g. a ``Detector``'s)."""
    for attr in ("backbone", "local_backbone"):
        backbone = getattr(model, attr, None)
        if isinstance(backbone, nn.Module) and not isinstance(
            backbone, (OnnxBackbone, ChunkedBackbone)
        ):
            setattr(model, attr, make(backbone))


def resolve_runtime(runtime: str, device: torch.device, precision: str) -> str:
    """``auto`` -> ``onnxruntime`` on the CPU in fp32 when ONNX Runtime is installed (measured
    faster there, docs/detector.md), else ``torch``; any other name is checked and kept."""
    if runtime == "auto":
        cpu = device.type == "cpu" and precision == "fp32"
        onnx = importlib.util.find_spec("onnxruntime") is not None
        return "onnxruntime" if cpu and onnx else "torch"
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r} not in {('auto', *RUNTIMES)}")
    return runtime


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
    exactly as it was (weights, buffers, mode). A model that already is an inference copy keeps
    its backbones (an ONNX Runtime session is shared, not exported again).
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
