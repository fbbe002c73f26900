"""Throughput and end-to-end latency of the consumer pipeline against a real Kafka broker.

    python -m scripts.bench.bench_pipeline [--bootstrap 127.0.0.1:9092] [--checkpoint X.safetensors]
        [--events 64] [--batch-sizes 1,8,16] [--size 320x240] [--threads N]

For each max batch size it runs two phases with the service in-process:

- *backlog*: ``--events`` events are produced first, then the service drains them; throughput =
  events / (last verdict time - first consume), the capacity of the pipeline;
- *paced*: events are produced at ``--load`` x that capacity (default 0.5); end-to-end latency
  = when a read_committed reader sees the verdict - input message timestamp (p50/p95).

It also times the bare model (``Detector.predict`` on decoded images) at the same batch sizes,
before and after each pipeline case (the mean is reported), so the report says how much of the
cost is the model and how much the pipeline around it.
Without ``--checkpoint`` it uses the demo checkpoint if present, else a random-init GLFF
mobilenet_v2 (same compute). Prints one JSON line per measurement and a summary table.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from consumer.logs import configure_logging
from consumer.serving.service import Service
from consumer.settings import ServiceSettings
from detector import Detector, decode_image
from detector.checkpoint import DEFAULT_CHECKPOINT, CheckpointMetadata, save_checkpoint
from detector.model import ModelConfig, build_model
from scripts.bench.support import VerdictClock, create_topics, image_events, pct, produce


def jpeg(seed: int, size: tuple[int, int]) -> bytes:
    """A smooth random image (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(size[1] // 16 + 1, size[0] // 16 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def checkpoint(path: Path | None, tmp: Path) -> Path:
    if path is not None:
        return path
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT
    config = ModelConfig(arch="glff", backbone="mobilenet_v2", patch_strategy="psm")
    out = tmp / "bench-glff-mnv2.safetensors"
    save_checkpoint(out, build_model(config), CheckpointMetadata(config=config, name="bench"))
    return out


def run_case(args: argparse.Namespace, ckpt: Path, images: list[bytes], batch: int) -> dict:
    tag = uuid.uuid4().hex[:8]
    src, dst, dlq = f"bench-in-{tag}", f"bench-verdicts-{tag}", f"bench-dlq-{tag}"
    create_topics(args.bootstrap, {src: args.partitions, dst: 1, dlq: 1})
    settings = ServiceSettings(
        kafka={
            "bootstrap_servers": args.bootstrap,
            "group_id": f"bench-{tag}",
            "input_topics": [src],
            "verdict_topic": dst,
            "dead_letter_topic": dlq,
            "exactly_once": args.exactly_once,
            "instance_id": f"bench-{tag}",
        },
        batching={"max_wait_ms": args.max_wait_ms},
        model={
            "max_batch_size": batch,
            "checkpoint": ckpt,
            "device": args.device,
            "torch_threads": args.threads,
            "runtime": args.runtime,
        },
        http={"enabled": False},
        logging={"level": "warning"},
        cache={"enabled": False} if "cache" in ServiceSettings.model_fields else {},
    )
    clock = VerdictClock(args.bootstrap, dst)
    service = Service(settings)
    thread = service.start()
    if not service.wait_ready(120):
        raise SystemExit(f"service not ready: {service.error!r}")
    # backlog: capacity
    began = time.time()
    produce(args.bootstrap, src, list(image_events(images, args.events, "image/jpeg")), rate=0)
    ok = clock.wait_for(args.events, timeout=args.events * 5 + 60)
    backlog = clock.samples[: args.events]
    first_done = min(s[0] for s in backlog)
    last_done = max(s[0] for s in backlog)
    first_batch = min(backlog)[2]  # the batch size of the first verdict seen
    throughput = args.events / max(1e-6, last_done - began)
    # paced: latency at a fraction of capacity
    rate = throughput * args.load
    n_paced = max(8, min(args.events, int(rate * args.paced_seconds)))
    paced_events = list(image_events(images, n_paced, "image/jpeg", start=args.events))
    produce(args.bootstrap, src, paced_events, rate=rate)
    ok = clock.wait_for(args.events + n_paced, timeout=n_paced * 5 + 60) and ok
    paced = clock.samples[args.events : args.events + n_paced]
    service.stop()
    thread.join(60)
    clock.close()
    lat = [s[1] for s in paced]
    return {
        "max_batch_size": batch,
        "events": args.events,
        "complete": ok,
        "throughput_eps": round(throughput, 2),
        # after the first batch's verdicts: no group join / first fetch, comparable to the
        # model alone (the first batch's verdicts arrive together)
        "steady_eps": round((args.events - first_batch) / max(1e-6, last_done - first_done), 2),
        "time_to_first_verdict_s": round(first_done - began, 2),
        "mean_batch_backlog": round(statistics.mean(s[2] for s in backlog), 2),
        "paced_rate_eps": round(rate, 2),
        "paced_events": n_paced,
        "latency_p50_s": round(pct(lat, 0.5), 3),
        "latency_p95_s": round(pct(lat, 0.95), 3),
        "mean_batch_paced": round(statistics.mean(s[2] for s in paced), 2),
    }


def model_only(
    ckpt: Path, images: list[bytes], batch: int, device: str, repeats: int, runtime: str
) -> dict:
    det = Detector.from_checkpoint(ckpt, device=device, runtime=runtime)
    decoded = [decode_image(b) for b in images[:batch]]
    while len(decoded) < batch:
        decoded += decoded[: batch - len(decoded)]
    det.predict(decoded)
    began = time.perf_counter()
    for _ in range(repeats):
        det.predict(decoded)
    seconds = (time.perf_counter() - began) / repeats
    decode_s = min(timeit_once(lambda b=b: decode_image(b)) for b in images[: min(8, len(images))])
    return {
        "max_batch_size": batch,
        "model_images_per_s": round(batch / seconds, 2),
        "model_batch_s": round(seconds, 3),
        "decode_ms": round(decode_s * 1000, 2),
    }


def timeit_once(fn: object) -> float:
    began = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--events", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,8,16")
    parser.add_argument("--size", default="320x240", help="image size WxH")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--load", type=float, default=0.5, help="paced rate / capacity")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime", "eager"])
    parser.add_argument(
        "--exactly-once", action="store_true", help="transactional mode (read_committed reader)"
    )
    args = parser.parse_args()
    configure_logging("warning", "console")
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(x) for x in args.size.split("x"))
    images = [jpeg(i, (w, h)) for i in range(32)]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = checkpoint(args.checkpoint, Path(tmp))
        rows = []
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            # the model alone is timed before AND after the pipeline (bracketing), so that load
            # from other jobs that changes during the run hits both sides alike
            before = model_only(ckpt, images, batch, args.device, args.repeats, args.runtime)
            print(json.dumps({"kind": "model", **before}), flush=True)
            case = run_case(args, ckpt, images, batch)
            print(json.dumps({"kind": "pipeline", **case}), flush=True)
            after = model_only(ckpt, images, batch, args.device, args.repeats, args.runtime)
            print(json.dumps({"kind": "model", **after}), flush=True)
            rate = (before["model_images_per_s"] + after["model_images_per_s"]) / 2
            model = {**before, "model_images_per_s": round(rate, 2)}
            rows.append((model, case))
    print(
        f"\ncheckpoint={ckpt.name} images={w}x{h} device={args.device} "
        f"torch_threads={torch.get_num_threads()} runtime={args.runtime} events={args.events} "
        f"mode={'exactly-once' if args.exactly_once else 'at-least-once'}"
    )
    print(
        "batch  model img/s  pipeline ev/s  ratio  steady ev/s  ratio  p50 s   p95 s"
        f"   (paced at x{args.load:.2f})"
    )
    for model, case in rows:
        ratio = case["throughput_eps"] / max(1e-9, model["model_images_per_s"])
        steady = case["steady_eps"] / max(1e-9, model["model_images_per_s"])
        print(
            f"{case['max_batch_size']:>5}  {model['model_images_per_s']:>11.2f}  "
            f"{case['throughput_eps']:>13.2f}  {ratio:>5.2f}  {case['steady_eps']:>11.2f}"
            f"  {steady:>5.2f}  {case['latency_p50_s']:>6.3f}  "
            f"{case['latency_p95_s']:>6.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
