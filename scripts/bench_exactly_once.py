"""The cost of exactly-once against at-least-once, measured on a real Kafka broker.

    python scripts/bench_exactly_once.py [--bootstrap 127.0.0.1:9092] [--model stub|PATH]
        [--events 400] [--intervals 0.2,1.0] [--paced-rate 20] [--paced-seconds 10]

For at-least-once and for exactly-once at each commit interval, the service runs in-process:

- *backlog*: ``--events`` events are produced first, then drained; throughput = events /
  (time the last verdict became readable - start);
- *paced*: events at ``--paced-rate`` per second; latency = when a ``read_committed`` reader
  receives the verdict - the input's timestamp (p50/p95). In exactly-once mode a verdict is
  readable only once its transaction commits, so this includes the commit interval.

``--model stub`` (default) answers instantly, so the numbers are the Kafka-side cost alone;
give a checkpoint path to include a real model. Prints one JSON line per case and a table.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumer.logs import configure_logging  # noqa: E402
from consumer.service import Service  # noqa: E402
from consumer.settings import ServiceSettings  # noqa: E402
from detector import DecodedImage, Detector, ModelInfo, Prediction  # noqa: E402
from schemas import ImageData, ImageEvent, decode_verdict, encode_image_event  # noqa: E402


class StubDetector:
    """Answers at once: isolates the cost of the Kafka side."""

    info = ModelInfo(
        name="stub",
        version="0",
        arch="cnn_aug",
        backbone="none",
        patch_strategy="none",
        weights_sha256="0" * 64,
        threshold=0.5,
        preprocessing_version="stub",
        input_size=224,
        torch_version="-",
        torchvision_version="-",
        device="cpu",
        precision="fp32",
    )

    def predict(self, images: Sequence[DecodedImage]) -> list[Prediction]:
        return [Prediction(0.25, False, 0.5, [], 1.0, im.width, im.height) for im in images]


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class Clock:
    """A read_committed reader in a thread: (receive time - input timestamp) per verdict."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-eos-reader-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.05):
                if msg.error() is not None:
                    continue
                now = time.time()
                verdict = decode_verdict(msg.value(), msg.headers())
                source = (verdict.source.timestamp_ms or now * 1000) / 1000.0
                self.samples.append((now, now - source))

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.samples) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.samples) >= count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def produce(bootstrap: str, topic: str, images: list[bytes], n: int, rate: float) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0 if rate else 5})
    began = time.monotonic()
    for i in range(n):
        if rate:
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        event = ImageEvent(
            id=f"bench-{uuid.uuid4()}",
            source="/bench",
            data=ImageData(data=images[i % len(images)], mime="image/png"),
        )
        value, headers = encode_image_event(event, mode="binary")
        producer.produce(topic, value=value, key=event.id.encode(), headers=list(headers))
        producer.poll(0)
    producer.flush(30)


_NUMERIC = ("throughput_eps", "latency_p50_s", "latency_p95_s", "latency_max_s", "commits")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def run_case(args: argparse.Namespace, detector: Any, eos: bool, interval: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    src, dst, dlq = f"bench-eos-in-{tag}", f"bench-eos-v-{tag}", f"bench-eos-dlq-{tag}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(src, 2), NewTopic(dst, 1), NewTopic(dlq, 1)]).values():
        f.result(30)
    settings = ServiceSettings(
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": args.bootstrap,
            "group_id": f"bench-eos-{tag}",
            "input_topics": [src],
            "verdict_topic": dst,
            "dead_letter_topic": dlq,
            "exactly_once": eos,
            "instance_id": f"bench-{tag}",
            "commit_interval_s": interval,
            "statistics_interval_ms": 0,
        },
        batching={"max_batch_size": args.batch, "max_wait_ms": 5},  # type: ignore[arg-type]
        http={"enabled": False},  # type: ignore[arg-type]
        logging={"level": "warning"},  # type: ignore[arg-type]
        cache={"enabled": False},  # type: ignore[arg-type]
    )
    images = [png(i) for i in range(16)]
    clock = Clock(args.bootstrap, dst)
    service = Service(settings, detector=detector)
    thread = service.start()
    try:
        if not service.wait_ready(120):
            raise SystemExit(f"service not ready: {service.error!r}")
        began = time.time()
        produce(args.bootstrap, src, images, args.events, rate=0)
        ok = clock.wait_for(args.events, timeout=300)
        last = max(s[0] for s in clock.samples[: args.events])
        throughput = args.events / max(1e-6, last - began)
        n_paced = int(args.paced_rate * args.paced_seconds)
        produce(args.bootstrap, src, images, n_paced, rate=args.paced_rate)
        ok = clock.wait_for(args.events + n_paced, timeout=120) and ok
        lat = [s[1] for s in clock.samples[args.events : args.events + n_paced]]
    finally:
        service.stop()
        thread.join(60)
        clock.close()
    commits = service.metrics.registry.get_sample_value("synthscan_commits_total", {"result": "ok"})
    return {
        "mode": "exactly-once" if eos else "at-least-once",
        "commit_interval_s": interval,
        "events": args.events,
        "complete": ok,
        "throughput_eps": round(throughput, 1),
        "paced_rate_eps": args.paced_rate,
        "latency_p50_s": round(pct(lat, 0.5), 3),
        "latency_p95_s": round(pct(lat, 0.95), 3),
        "latency_max_s": round(max(lat, default=0.0), 3),
        "commits": int(commits or 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--model", default="stub", help="'stub' or a checkpoint path")
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--intervals", default="0.2,1.0", help="commit intervals (s)")
    parser.add_argument("--paced-rate", type=float, default=20.0)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning", "console")
    if args.model == "stub":
        detector: Any = StubDetector()
    else:
        detector = Detector.from_checkpoint(args.model, device="cpu", precision="fp32")
        detector.warmup()
    cases: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for _ in range(args.repeats):  # interleaved, so that load changes hit both modes alike
        for interval in (float(x) for x in args.intervals.split(",")):
            for eos in (False, True):
                row = run_case(args, detector, eos, interval)
                print(json.dumps(row), flush=True)
                cases.setdefault((row["mode"], interval), []).append(row)
    print(
        f"\nmodel={args.model} events={args.events} batch={args.batch} "
        f"paced={args.paced_rate}/s repeats={args.repeats} (medians)"
    )
    print("mode            interval  ev/s     p50 s   p95 s   max s   commits")
    for (mode, interval), rows in cases.items():
        med = {k: statistics.median(r[k] for r in rows) for k in _NUMERIC}
        print(
            f"{mode:<15} {interval:>8.2f}  {med['throughput_eps']:>7.1f}  "
            f"{med['latency_p50_s']:>6.3f}  {med['latency_p95_s']:>6.3f}  "
            f"{med['latency_max_s']:>6.3f}  {med['commits']:>7.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
