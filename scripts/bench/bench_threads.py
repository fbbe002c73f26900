"""Torch threads for the CLIs and the service on this machine: each count measured, same images.

    python -m scripts.bench.bench_threads [--threads 1,2] [--images 24] [--rounds 2] \
        [--runtime torch]

Three workloads, each the path the real entry point runs, with JPEGs of 256-512 px written to a
temporary CNNDetection-layout folder and a random-init GLFF MobileNetV2 (batch-norm statistics
as after training):

- ``predict``: ``Detector.predict`` on the file paths (``python -m detector predict``: decoding
  in a background thread, one batch ahead of the compute);
- ``evaluate``: ``detector.training.scoring.score_samples`` with 2 DataLoader worker processes
  decoding (``python -m detector evaluate`` / ``calibrate``; batch norm folded);
- ``consumer``: the service in-process against a real broker (``devkafka``), backlog drained,
  events/s (decoding in its fetch pool while the detector thread computes).

Thread counts are interleaved within each round (load from other jobs hits all alike); the
median over rounds is printed with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from consumer.logs import configure_logging
from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.engine import Detector
from detector.model import ModelConfig, build_model
from detector.training.datasets import load_samples
from detector.training.scoring import score_samples
from devkafka.broker import KafkaBroker
from scripts.bench import bench_pipeline as bp
from scripts.bench.bench_detector import trained_like

SIZES = ((256, 256), (384, 512), (512, 384), (320, 480), (448, 448), (300, 400))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime", "eager"])
    parser.add_argument("--workloads", default="predict,evaluate,consumer")
    args = parser.parse_args()
    configure_logging("warning", "console")
    counts = [int(t) for t in args.threads.split(",")]
    workloads = args.workloads.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        images = []
        for i in range(args.images):
            h, w = SIZES[i % len(SIZES)]
            data = bp.jpeg(i, (w, h))
            path = root / "bench" / ("1_fake" if i % 2 else "0_real") / f"{i:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            images.append(data)
        paths = sorted(root.rglob("*.jpg"))
        samples = load_samples(root)
        config = ModelConfig(backbone="mobilenet_v2")
        model = build_model(config)
        trained_like(model)
        model.eval()
        ckpt = Path(tmp) / "bench.safetensors"
        save_checkpoint(ckpt, model, CheckpointMetadata(config=config, name="bench"))
        dets = {}
        for t in counts:  # ONNX Runtime takes its thread count at start-up
            torch.set_num_threads(t)
            dets[t] = Detector.from_checkpoint(
                ckpt, device="cpu", runtime=args.runtime, max_batch_size=8
            )
            dets[t].predict(paths[:2])
        broker = None
        opts = argparse.Namespace(
            partitions=1,
            max_wait_ms=20.0,
            events=args.images,
            load=0.5,
            paced_seconds=2.0,
            exactly_once=False,
            device="cpu",
            runtime=args.runtime,
        )
        if "consumer" in workloads:
            broker = KafkaBroker(Path(tmp) / "kafka")
            broker.start()
            opts.bootstrap = broker.bootstrap_servers
        rates: dict[tuple[str, int], list[float]] = {}
        loads = []
        try:
            for _ in range(args.rounds):
                loads.append(os.getloadavg()[0])
                for t in counts:
                    torch.set_num_threads(t)
                    if "predict" in workloads:
                        began = time.perf_counter()
                        dets[t].predict(paths)
                        rate = len(paths) / (time.perf_counter() - began)
                        rates.setdefault(("predict", t), []).append(rate)
                    if "evaluate" in workloads:
                        began = time.perf_counter()
                        score_samples(model, samples, batch_size=8, workers=2, progress=False)
                        rate = len(samples) / (time.perf_counter() - began)
                        rates.setdefault(("evaluate", t), []).append(rate)
                    if "consumer" in workloads:
                        opts.threads = t
                        case = bp.run_case(opts, ckpt, images, 8)
                        rates.setdefault(("consumer", t), []).append(case["throughput_eps"])
        finally:
            if broker is not None:
                broker.stop()
    print(
        f"\ncpus={os.cpu_count()} runtime={args.runtime} images={args.images} JPEG 256-512 px"
        f" rounds={args.rounds} load average per round={','.join(f'{x:.1f}' for x in loads)}"
    )
    print("workload  " + "".join(f"{f'{t} thread(s) img/s':>22}" for t in counts) + "   runs")
    for work in workloads:
        row = [statistics.median(rates[(work, t)]) for t in counts]
        runs = " ".join("/".join(f"{r:.2f}" for r in rates[(work, t)]) for t in counts)
        print(f"{work:<9} " + "".join(f"{r:>22.2f}" for r in row) + f"   {runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
