"""GPU measurements that ``bench_detector.py`` does not make: decoding, compilation, end to end.

    python -m scripts.bench.gpu_bench --out OUT [--device cuda] [--precision bf16] [--dry]

Writes ``OUT/gpu_bench.json`` and prints one JSON line per measurement:

- ``decode``: JPEGs of 256-512 px (same bytes for all): PIL on the CPU (``decode_image``, one
  thread and a pool of all cores) vs ``torchvision.io.decode_jpeg`` on the device (nvJPEG,
  batched lists), images/s;
- ``floor``: the bare backbone at batch 64/256 (x7 passes), eager vs ``torch.compile`` vs
  ``torch.compile(mode="reduce-overhead")`` (CUDA graphs), images/s;
- ``e2e``: verdicts/s for GLFF (ResNet-50 and MobileNetV2) with decoding included: JPEG bytes ->
  (CPU pool decode | nvJPEG decode) -> ``Detector.predict`` at batch 64/256, and where the
  time goes (decode share, model share).

``--dry`` runs every code path on the CPU at tiny sizes (no numbers worth keeping).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from detector.checkpoint import CheckpointMetadata
from detector.decode import DecodedImage, decode_image
from detector.engine import Detector
from detector.model import ModelConfig, build_model


def jpegs(n: int, seed: int = 0) -> list[bytes]:
    """Photo-like JPEGs (smooth random content, quality 90), sides between 256 and 512 px."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w, h = (int(v) for v in rng.integers(256, 513, size=2))
        small = rng.integers(0, 255, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(
            buf, "JPEG", quality=90
        )
        out.append(buf.getvalue())
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_rate(fn: Callable[[], Any], items: int, device: torch.device, repeats: int) -> float:
    """Items per second, median over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        began = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - began)
    return items / statistics.median(times)


def gpu_decode(data: list[bytes], device: torch.device) -> list[DecodedImage]:
    """nvJPEG (``decode_jpeg`` on the device) for a list; pixels stay on the device."""
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in data]
    if device.type == "cuda":
        decoded = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
    else:  # dry run: torchvision's CPU decoder, same API
        decoded = [decode_jpeg(t, mode=ImageReadMode.RGB) for t in tensors]
    return [
        DecodedImage(
            pixels=p,
            width=int(p.shape[2]),
            height=int(p.shape[1]),
            format="JPEG",
            mode="RGB",
            sha256="",
        )
        for p in decoded
    ]


def bench_decode(data: list[bytes], device: torch.device, repeats: int) -> list[dict[str, Any]]:
    n = len(data)
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    gpu_name = "nvjpeg" if device.type == "cuda" else "torchvision-cpu(dry)"
    runs: dict[str, Callable[[], Any]] = {
        "cpu-pil-1-thread": lambda: [decode_image(b) for b in data],
        f"cpu-pil-{os.cpu_count()}-threads": lambda: list(pool.map(decode_image, data)),
        gpu_name: lambda: gpu_decode(data, device),
    }
    rows = [
        {"decode": k, "img_s": round(median_rate(f, n, device, repeats), 1)}
        for k, f in runs.items()
    ]
    pool.shutdown()
    return rows


def bench_floor(
    backbone: str, device: torch.device, dtype: torch.dtype, batches: list[int], repeats: int
) -> list[dict[str, Any]]:
    rows = []
    net = build_model(ModelConfig(backbone=backbone)).backbone.to(device).eval()
    net = net.to(memory_format=torch.channels_last)
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"eager": net}
    if device.type == "cuda":
        variants["compile"] = torch.compile(net)
        variants["compile-cudagraphs"] = torch.compile(net, mode="reduce-overhead")
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224, device=device).to(memory_format=torch.channels_last)
        for name, fn in variants.items():

            def run(f: Callable[[torch.Tensor], torch.Tensor] = fn, x: torch.Tensor = x) -> None:
                cast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
                with torch.inference_mode(), cast:
                    for _ in range(7):
                        f(x)

            try:
                rate = median_rate(run, batch, device, repeats)
            except Exception as exc:  # a compile failure is a result too
                rows.append(
                    {"floor": name, "backbone": backbone, "batch": batch, "error": repr(exc)[:300]}
                )
                continue
            rows.append(
                {"floor": name, "backbone": backbone, "batch": batch, "img_s": round(rate, 1)}
            )
    return rows


def bench_e2e(
    backbone: str,
    data: list[bytes],
    device: torch.device,
    precision: str,
    batches: list[int],
    repeats: int,
) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone))
    det = Detector(
        model, CheckpointMetadata(config=model.config), device=str(device), precision=precision,
        max_batch_size=max(batches),
    )  # fmt: skip
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    rows = []
    for batch in batches:
        chunk = (data * (batch // len(data) + 1))[:batch]
        on_cpu = [decode_image(b) for b in chunk]
        on_gpu = gpu_decode(chunk, device)
        model_only = median_rate(lambda im=on_gpu: det.predict(im), batch, device, repeats)
        nv = median_rate(lambda c=chunk: det.predict(gpu_decode(c, device)), batch, device, repeats)
        cpu = median_rate(
            lambda c=chunk: det.predict(list(pool.map(decode_image, c))), batch, device, repeats
        )
        model_cpu_pixels = median_rate(lambda im=on_cpu: det.predict(im), batch, device, repeats)
        rows.append(
            {
                "e2e": backbone,
                "precision": precision,
                "batch": batch,
                "verdicts_s_nvjpeg": round(nv, 1),
                "verdicts_s_cpu_decode": round(cpu, 1),
                "model_only_pixels_on_device": round(model_only, 1),
                "model_only_pixels_on_host": round(model_cpu_pixels, 1),
                "decode_share_nvjpeg": round(1 - nv / model_only, 3),
            }
        )
    pool.shutdown()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dry", action="store_true", help="CPU, tiny sizes: check the code runs")
    args = parser.parse_args()
    device = torch.device("cpu" if args.dry else args.device)
    precision = "fp32" if args.dry else args.precision
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    batches = [2] if args.dry else [64, 256]
    repeats = 1 if args.dry else args.repeats
    data = jpegs(4 if args.dry else 256)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = [
        {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "precision": precision,
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "dry": args.dry,
        }
    ]
    print(json.dumps(rows[0]), flush=True)

    def emit(new: list[dict[str, Any]]) -> None:
        for row in new:
            print(json.dumps(row), flush=True)
        rows.extend(new)
        (args.out / "gpu_bench.json").write_text(json.dumps(rows, indent=1))

    emit(bench_decode(data, device, repeats))
    for backbone in ("mobilenet_v2",) if args.dry else ("resnet50", "mobilenet_v2"):
        emit(bench_floor(backbone, device, dtype, batches, repeats))
        emit(bench_e2e(backbone, data, device, precision, batches, repeats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
