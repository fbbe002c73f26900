"""Benchmark the detector: batched engine vs today's engine vs a per-image loop vs the floor.

Several ways to score the same decoded images with the same weights, in the same run:

(a) engine  - ``detector.Detector.predict``: images grouped by size, one padded uint8 batch moved
              to the device, global view and all patches cropped and resized by ``roi_align``
              on the device, 7 backbone passes per image batched as 2 calls.
(b) naive   - what the authors' reference code does: per image on the CPU with PIL, resize the
              short side to 224 and centre-crop for the global view; after PSM, crop and resize
              each of the 6 patches in a Python loop with PIL, convert each to a tensor and
              copy it to the device. The network calls are batched exactly as in (a), so the
              difference is the crop path.
(c) floor   - the bare backbone run 7 times on a ready ``[B, 3, 224, 224]`` batch already on the
              device: the compute that cannot be avoided.

The engine is measured once per ``--runtimes`` entry (``eager`` = the engine before batch-norm
folding, ``torch`` = folded, ``torch-cl`` = folded + channels_last, ``onnxruntime``); the FIRST
is the baseline ("today"), the LAST is "the engine", and (b) and (c) use the last one's
optimized model. Methods are interleaved within each repeat and the median is reported (the
machine may be shared). GFLOP/s = 7 backbone passes' FLOPs (counted by torch) / engine time.
Decoding is excluded. Usage::

    python scripts/bench_detector.py --device cpu --backbones mobilenet_v2,resnet50 \
        --batch-sizes 1,8,32 --runtimes eager,torch,onnxruntime --threads 1
    python scripts/bench_detector.py --device cuda --precision bf16 --runtimes eager,torch \
        --batch-sizes 1,8,64,256
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from detector.checkpoint import CheckpointMetadata
from detector.crops import IMAGENET_MEAN, IMAGENET_STD
from detector.decode import DecodedImage, decode_image
from detector.engine import PRECISIONS, Detector
from detector.model import GLFF, ModelConfig, build_model
from detector.patches import select_patches
from detector.runtime import default_threads

T = TypeVar("T")
MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - MEAN) / STD


def _global_view(image: Image.Image) -> Image.Image:
    w, h = image.size
    scale = 224 / min(w, h)
    resized = image.resize(
        (max(224, round(w * scale)), max(224, round(h * scale))), Image.Resampling.BILINEAR
    )
    left, top = (resized.width - 224) // 2, (resized.height - 224) // 2
    return resized.crop((left, top, left + 224, top + 224))


def naive_scores(
    model: GLFF, images: list[Image.Image], device: torch.device, autocast: Any
) -> torch.Tensor:
    """Per-image CPU preprocessing and a Python loop over patch crops (see module docstring)."""
    with torch.inference_mode(), autocast():
        views = torch.stack([_to_tensor(_global_view(im)) for im in images]).to(device)
        fmap = model.backbone(views.contiguous(memory_format=_fmt(model)))
        sizes = torch.tensor([[im.height, im.width] for im in images])
        boxes = select_patches(fmap, sizes, "psm").boxes.round().long().tolist()
        crops = []
        for image, image_boxes in zip(images, boxes, strict=True):
            for x0, y0, x1, y1 in image_boxes:
                patch = image.crop((x0, y0, x1, y1)).resize((224, 224), Image.Resampling.BILINEAR)
                crops.append(_to_tensor(patch).to(device))
        local = model.backbone(torch.stack(crops).contiguous(memory_format=_fmt(model)))
        g = F.relu(model.embed(fmap.mean(dim=(2, 3)))).unsqueeze(1)
        p = F.relu(model.embed(local.mean(dim=(2, 3)))).unflatten(0, (len(images), 6))
        fused, _ = model.fusion(torch.cat([p, g], dim=1))
        return torch.sigmoid(model.head(fused).squeeze(1).float()).cpu()


def _fmt(model: GLFF) -> torch.memory_format:
    return torch.channels_last if model.channels_last else torch.contiguous_format


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return time.perf_counter() - start, result


def backbone_flops(model: GLFF, device: torch.device) -> float:
    """FLOPs of one backbone pass on one 224 crop (torch's counter; 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, 224, 224, device=device)
    reference = build_model(ModelConfig(backbone=model.config.backbone)).backbone.to(device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        reference.eval()(x)
    return float(counter.get_total_flops())


def batch_sizes(spec: str, backbone: str) -> list[int]:
    """``"1,8,32"`` for every backbone, or per backbone: ``"mobilenet_v2:1,8,32 resnet50:1,4"``."""
    if ":" not in spec:
        return [int(b) for b in spec.split(",")]
    for part in spec.split():
        name, _, values = part.partition(":")
        if name == backbone:
            return [int(b) for b in values.split(",")]
    raise SystemExit(f"--batch-sizes has no entry for {backbone}")


def trained_like(model: nn.Module) -> None:
    """Give batch norms non-trivial statistics (as after training) so that scores vary."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)


def make_images(n: int, sizes: list[tuple[int, int]], seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return out


def _detector(model: GLFF, runtime: str, args: argparse.Namespace, max_batch: int) -> Detector:
    name, _, suffix = runtime.partition("-")
    return Detector(
        model,
        CheckpointMetadata(config=model.config),
        device=args.device,
        precision=args.precision,
        max_batch=max_batch,
        runtime=name,
        channels_last=True if suffix == "cl" else None,
    )


def bench_backbone(backbone: str, args: argparse.Namespace, sizes: list[tuple[int, int]]) -> None:
    """One table: every runtime's engine, naive and floor at each batch size, interleaved."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone))
    assert isinstance(model, GLFF)
    trained_like(model)
    batches = batch_sizes(args.batch_sizes, backbone)
    runtimes = args.runtimes.split(",")
    dets = {rt: _detector(model, rt, args, max(batches)) for rt in runtimes}
    best = dets[runtimes[-1]]
    device, fast = best.device, best.model
    assert isinstance(fast, GLFF)
    dtype = PRECISIONS[args.precision]
    autocast: Callable[[], Any] = (
        contextlib.nullcontext
        if args.precision == "fp32"
        else lambda: torch.autocast(device.type, dtype=dtype)
    )
    flops = backbone_flops(model, device)
    print(
        f"\nbackbone={backbone} ({flops / 1e9:.2f} GFLOP per 224 crop, x7 per image)"
        f" runtimes={args.runtimes} (baseline=today={runtimes[0]}, engine={runtimes[-1]})"
    )
    cols = [f"{rt} img/s" for rt in runtimes] + ["naive img/s", "floor img/s"]
    header = (
        f"{'batch':>5} | "
        + " ".join(f"{c:>17}" for c in cols)
        + f" | {'engine/today':>12} {'engine/floor':>12} {'engine/naive':>12}"
        + f" | {'GFLOP/s':>7} | max|dscore|"
    )
    print(header)
    print("-" * len(header))
    for batch in batches:
        pil = make_images(batch, sizes)
        decoded: list[DecodedImage] = [decode_image(im) for im in pil]
        floor_input = torch.randn(batch, 3, 224, 224, device=device)
        floor_input = floor_input.contiguous(memory_format=_fmt(fast))

        def floor(x: torch.Tensor = floor_input) -> bool:
            with torch.inference_mode(), autocast():
                for _ in range(7):
                    fast.backbone(x)
            return True

        methods: dict[str, Callable[[], Any]] = {
            rt: (lambda d=det, im=decoded: d.predict(im)) for rt, det in dets.items()
        }
        methods["naive"] = lambda im=pil: naive_scores(fast, im, device, autocast)
        methods["floor"] = floor
        for fn in methods.values():  # warm-up at this batch size
            fn()
        times: dict[str, list[float]] = {k: [] for k in methods}
        results: dict[str, Any] = {}
        for _ in range(args.repeats):
            for key, fn in methods.items():
                seconds, results[key] = _timed(fn, device)
                times[key].append(seconds)
        med = {k: statistics.median(v) for k, v in times.items()}
        engine, today = med[runtimes[-1]], med[runtimes[0]]
        scores = torch.tensor([p.score for p in results[runtimes[0]]])
        diff = max(
            float((torch.tensor([p.score for p in results[rt]]) - scores).abs().max())
            for rt in runtimes
        )
        naive_diff = float(
            (torch.tensor([p.score for p in results[runtimes[-1]]]) - results["naive"]).abs().max()
        )
        gflops = 7 * flops * batch / engine / 1e9
        print(
            f"{batch:>5} | "
            + " ".join(f"{batch / med[k]:>17.2f}" for k in methods)
            + f" | {today / engine:>11.2f}x {med['floor'] / engine:>11.2f}x"
            + f" {med['naive'] / engine:>11.2f}x | {gflops:>7.1f} | {diff:.1e} ({naive_diff:.3f})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument(
        "--batch-sizes", default="1,8,32", help="'1,8,32' or 'mobilenet_v2:1,8,32 resnet50:1,4'"
    )
    parser.add_argument("--backbones", default="mobilenet_v2,resnet50")
    parser.add_argument("--runtimes", default="eager,torch", help="first = baseline, last = engine")
    parser.add_argument("--sizes", default="256x256,384x512,720x1280", help="HxW,... cycled")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is kept")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: detector.default_threads)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads or default_threads())
    sizes = [(int(h), int(w)) for h, w in (s.split("x") for s in args.sizes.split(","))]
    device = Detector(
        build_model(ModelConfig(backbone="resnet18")),  # only resolves the device name
        CheckpointMetadata(config=ModelConfig(backbone="resnet18")),
        device=args.device,
        runtime="eager",
    ).device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    load = os.getloadavg()
    print(
        f"device={device} ({name}) cpus={os.cpu_count()} threads={torch.get_num_threads()}"
        f" precision={args.precision} image sizes={args.sizes} repeats={args.repeats} (median)"
        f" torch={torch.__version__} load average at start={load[0]:.1f}"
    )
    print(
        "columns: img/s per method; engine/today, engine/floor and engine/naive are speed ratios"
        " (time of the other / engine time); max|dscore| vs today (vs naive in brackets)"
    )
    for backbone in args.backbones.split(","):
        bench_backbone(backbone, args, sizes)
    print(f"\nload average at end={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
