"""Benchmark the detector: old vs new engine vs a per-image loop vs the floor, and end to end.

All methods score the same decoded images (a fixed mix of sizes, ``--images`` of them) with the
same weights, in the same run; each batch-size row runs every method over ALL the images, in
chunks of that batch size:

(a) old     - the engine before the CPU optimizations: ``Detector(runtime="reference")`` (unfolded
              backbone, the padded batch converted to float and every view cut by
              ``roi_align``), the first ``--runtimes`` entry;
(b) engines - ``Detector.predict`` with each further ``--runtimes`` entry (``eager``: CPU views
              only, ``torch``: + batch norm folded, ``torch-cl``: + channels_last,
              ``onnxruntime``: folded backbone in ONNX Runtime); the LAST is "the engine";
(c) naive   - what the authors' reference code does: per image with PIL on the CPU, short side
              to 224 and centre crop for the global view; after PSM each of the 6 patches
              cropped and resized with PIL in a Python loop, converted and copied one by one.
              Network calls batched as in the engine, with the engine's backbone;
(d) floor   - the engine's backbone run 7 times on a ready ``[B, 3, 224, 224]`` batch already on
              the device: the compute that cannot be avoided.

Methods are interleaved within each repeat and the median is reported (the machine may be
shared; ``--clock cpu`` times the detector tables in process CPU time instead of wall time).
GFLOP/s = 7 backbone passes' FLOPs (counted by torch) / time. Decoding is excluded.

``--pipeline N`` adds the end-to-end part: the consumer service (in-process, real Kafka broker
started from ``devkafka`` unless ``--bootstrap`` is given) drains a backlog of JPEG events
(``--pipeline-events``, same sizes as above) with the engine's runtime, and
``Detector.predict`` scores the same images decoded, in chunks of the service's max batch,
N times alternately; the ratio pipeline/detector of each round shows the spread. Usage::

    python -m scripts.bench.bench_detector --device cpu --threads 1 --batch-sizes 1,2,4,8 \
        --runtimes reference,torch,onnxruntime --pipeline 3
    python -m scripts.bench.bench_detector --device cuda --precision bf16 \
        --runtimes reference,torch,torch-cl --batch-sizes 1,8,64,256 --images 256
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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


CLOCK: Callable[[], float] = time.perf_counter


def _timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    _sync(device)
    start = CLOCK()
    result = fn()
    _sync(device)
    return CLOCK() - start, result


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
    """``n`` noise images cycling over ``sizes`` (HxW)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return out


def _detector(model: GLFF, runtime: str, args: argparse.Namespace) -> Detector:
    name, _, suffix = runtime.partition("-")
    return Detector(
        model,
        CheckpointMetadata(config=model.config),
        device=args.device,
        precision=args.precision,
        runtime=name,
        channels_last=True if suffix == "cl" else None,
    )


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def bench_backbone(backbone: str, args: argparse.Namespace, sizes: list[tuple[int, int]]) -> None:
    """One table: old engine, every runtime's engine, naive and floor at each batch size."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone))
    assert isinstance(model, GLFF)
    trained_like(model)
    runtimes = args.runtimes.split(",")
    dets = {rt: _detector(model, rt, args) for rt in runtimes}
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
    pil = make_images(args.images, sizes)
    decoded: list[DecodedImage] = [decode_image(im) for im in pil]
    n = len(decoded)
    print(
        f"\nbackbone={backbone} ({flops / 1e9:.2f} GFLOP per 224 crop, x7 per image)"
        f" images={n} runtimes={args.runtimes} (old={runtimes[0]}, engine={runtimes[-1]})"
        f" load average={os.getloadavg()[0]:.1f}",
        flush=True,
    )
    cols = [f"{rt} img/s" for rt in runtimes] + ["naive img/s", "floor img/s"]
    header = (
        f"{'batch':>5} | "
        + " ".join(f"{c:>17}" for c in cols)
        + f" | {'engine/old':>10} {'engine/floor':>12} {'engine/naive':>12}"
        + f" | {'GFLOP/s':>7} {'floor GF/s':>10} | max|dscore| | load"
    )
    print(header)
    print("-" * len(header), flush=True)
    batches = batch_sizes(args.batch_sizes, backbone)
    for batch in batches:
        floor_input = torch.randn(batch, 3, 224, 224, device=device)
        floor_input = floor_input.contiguous(memory_format=_fmt(fast))
        rounds = -(-n // batch)  # the floor does the backbone work of all n images

        def floor(x: torch.Tensor = floor_input, rounds: int = rounds) -> bool:
            with torch.inference_mode(), autocast():
                for _ in range(rounds * 7):
                    fast.backbone(x)
            return True

        def engine(det: Detector, batch: int = batch) -> list[float]:
            det.options = dataclasses.replace(det.options, max_batch_size=batch)
            return [p.score for p in det.predict(decoded)]

        def naive(batch: int = batch) -> list[float]:
            parts = [naive_scores(fast, part, device, autocast) for part in _chunks(pil, batch)]
            return torch.cat(parts).tolist()

        methods: dict[str, Callable[[], Any]] = {
            rt: (lambda d=det: engine(d)) for rt, det in dets.items()
        }
        methods["naive"] = naive
        methods["floor"] = floor
        times: dict[str, list[float]] = {k: [] for k in methods}
        results: dict[str, Any] = {}
        load = os.getloadavg()[0]
        warm = batch == batches[0]  # one untimed round first (start-up costs)
        for repeat in range(args.repeats + int(warm)):
            for key, fn in methods.items():
                seconds, results[key] = _timed(fn, device)
                if repeat or not warm:
                    times[key].append(seconds)
        med = {k: statistics.median(v) for k, v in times.items()}
        new, old = med[runtimes[-1]], med[runtimes[0]]
        scores = torch.tensor(results[runtimes[0]])
        diff = max(float((torch.tensor(results[rt]) - scores).abs().max()) for rt in runtimes)
        naive_diff = float((torch.tensor(results["naive"]) - scores).abs().max())
        gflops = 7 * flops * n / new / 1e9
        floor_gflops = 7 * flops * rounds * batch / med["floor"] / 1e9
        floor_rate = rounds * batch / med["floor"]
        rates = [n / med[k] for k in methods if k != "floor"] + [floor_rate]
        print(
            f"{batch:>5} | "
            + " ".join(f"{r:>17.3f}" for r in rates)
            + f" | {old / new:>9.2f}x {(n / new) / floor_rate:>11.2f}x"
            + f" {med['naive'] / new:>11.2f}x | {gflops:>7.1f} {floor_gflops:>10.1f}"
            + f" | {diff:.1e} ({naive_diff:.3f}) | {load:.1f}",
            flush=True,
        )


def bench_pipeline(args: argparse.Namespace, sizes: list[tuple[int, int]]) -> None:
    """Consumer pipeline (real broker) vs ``Detector.predict`` on the same images, N rounds."""
    import tempfile
    from pathlib import Path

    from consumer.logs import configure_logging
    from detector.checkpoint import save_checkpoint
    from devkafka.broker import KafkaBroker
    from scripts.bench import bench_pipeline as bp

    configure_logging("warning", "console")
    runtime = args.runtimes.split(",")[-1].partition("-")[0]
    cycled = (sizes * (args.pipeline_events // len(sizes) + 1))[: args.pipeline_events]
    images = [bp.jpeg(i, (w, h)) for i, (h, w) in enumerate(cycled)]
    decoded = [decode_image(b) for b in images]
    opts = argparse.Namespace(
        bootstrap=args.bootstrap,
        partitions=1,
        max_wait_ms=20.0,
        events=args.pipeline_events,
        load=0.5,
        paced_seconds=2.0,
        exactly_once=False,
        device=args.device,
        threads=torch.get_num_threads(),
        runtime=runtime,
    )
    with tempfile.TemporaryDirectory() as tmp:
        broker = None
        if not args.bootstrap:
            broker = KafkaBroker(Path(tmp) / "kafka")
            broker.start()
            opts.bootstrap = broker.bootstrap_servers
        try:
            config = ModelConfig(backbone=args.pipeline_backbone)
            model = build_model(config)
            trained_like(model)
            ckpt = Path(tmp) / "bench.safetensors"
            save_checkpoint(ckpt, model, CheckpointMetadata(config=config, name="bench"))
            det = Detector.from_checkpoint(
                ckpt, device=args.device, runtime=runtime, max_batch_size=args.pipeline_batch
            )
            det.predict(decoded[:2])
            print(
                f"\nend to end: {args.pipeline_backbone} runtime={runtime} events="
                f"{len(images)} JPEG {args.sizes} max_batch={args.pipeline_batch}"
                f" threads={torch.get_num_threads()} broker={opts.bootstrap}"
            )
            print(
                "round | detector img/s | pipeline ev/s  ratio | steady ev/s  ratio | mean batch"
                " | load"
            )
            ratios = []
            for i in range(args.pipeline):
                load = os.getloadavg()[0]
                began = time.perf_counter()
                det.predict(decoded)
                before = len(decoded) / (time.perf_counter() - began)
                case = bp.run_case(opts, ckpt, images, args.pipeline_batch)
                began = time.perf_counter()
                det.predict(decoded)
                after = len(decoded) / (time.perf_counter() - began)
                model_rate = (before + after) / 2
                ratio = case["throughput_eps"] / model_rate
                steady = case["steady_eps"] / model_rate
                ratios.append((ratio, steady))
                print(
                    f"{i + 1:>5} | {model_rate:>14.2f} | {case['throughput_eps']:>13.2f}"
                    f" {ratio:>6.2f} | {case['steady_eps']:>11.2f} {steady:>6.2f}"
                    f" | {case['mean_batch_backlog']:>10.2f} | {load:.1f}",
                    flush=True,
                )
            low, high = min(r for r, _ in ratios), max(r for r, _ in ratios)
            s_low, s_high = min(r for _, r in ratios), max(r for _, r in ratios)
            print(
                f"pipeline/detector: {low:.2f}-{high:.2f} (steady {s_low:.2f}-{s_high:.2f})"
                f" over {len(ratios)} rounds"
            )
        finally:
            if broker is not None:
                broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument(
        "--batch-sizes", default="1,2,4,8", help="'1,2,4,8' or 'mobilenet_v2:1,8 resnet50:1,4'"
    )
    parser.add_argument("--backbones", default="mobilenet_v2,resnet50")
    parser.add_argument(
        "--runtimes",
        default="reference,torch,onnxruntime",
        help="first: the old engine, last: the engine (reference|eager|torch|torch-cl|onnxruntime)",
    )
    parser.add_argument(
        "--sizes",
        default="256x256,384x512,512x384,768x1024,1024x768,480x640,1024x1024,300x400",
        help="HxW,... cycled",
    )
    parser.add_argument("--images", type=int, default=8, help="images scored per method and row")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is kept")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: detector.default_threads)"
    )
    parser.add_argument("--pipeline", type=int, default=0, help="end-to-end rounds (0: skip)")
    parser.add_argument("--pipeline-events", type=int, default=96)
    parser.add_argument("--pipeline-batch", type=int, default=8)
    parser.add_argument("--pipeline-backbone", default="mobilenet_v2")
    parser.add_argument("--bootstrap", default="", help="a running broker (default: start one)")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="cpu: process CPU time for the detector tables (CPU device; with one thread on a"
        " shared machine it leaves out the time spent waiting for a core)",
    )
    args = parser.parse_args()
    global CLOCK
    if args.clock == "cpu":
        CLOCK = time.process_time
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
        f" clock={args.clock}"
        f" torch={torch.__version__} load average at start={load[0]:.1f} {load[1]:.1f}"
        f" {load[2]:.1f} ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC)"
    )
    print(
        "columns: img/s per method over the same images; engine/old, engine/floor and"
        " engine/naive are speed ratios; GFLOP/s of the engine and of the floor;"
        " max|dscore| of every runtime vs old (naive vs old in brackets); load at the row's start"
    )
    for backbone in args.backbones.split(","):
        if backbone:
            bench_backbone(backbone, args, sizes)
    if args.pipeline:
        bench_pipeline(args, sizes)
    load = os.getloadavg()
    print(f"\nload average at end={load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
