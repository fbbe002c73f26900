"""Soak: many small events through the real pipeline and broker, process RSS sampled.

    python -m scripts.bench.bench_soak [--bootstrap HOST:PORT | (own broker)] [--events 10000]
        [--model stub|PATH] [--chunk 500]

The service runs in-process. Events (small inline PNGs, all distinct so the verdict cache does
not short-cut them) are produced in chunks while the service consumes; RSS is sampled every
0.2 s together with the number of verdicts so far. Without ``--bootstrap`` a broker is started
in a temporary directory (devkafka). ``--model stub`` (default) answers at once, so the run
takes minutes and measures the pipeline's own memory (parse, decode, produce, commit,
metrics); give a checkpoint path to include a real model.

Prints RSS at start, after the first half and at the end of the events, the peak, and the
growth over the last half (target: under 5 %), plus throughput.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from consumer.logs import configure_logging
from consumer.serving.service import Service
from consumer.settings import ServiceSettings
from devkafka.broker import KafkaBroker
from schemas import ImageData, ImageEvent, encode_image_event
from scripts.bench.support import create_topics, load_detector, produce


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def events(start: int, n: int) -> list[tuple[bytes, bytes, list]]:
    """``n`` binary-mode events, each a distinct 64x48 PNG (no verdict-cache hits)."""
    out = []
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
        event = ImageEvent(
            id=f"soak-{i}", source="/soak", data=ImageData(data=buf.getvalue(), mime="image/png")
        )
        value, headers = encode_image_event(event, mode="binary")
        out.append((event.id.encode(), value, list(headers)))
    return out


def outputs(service: Service) -> int:
    reg = service.metrics.registry
    done = 0.0
    for metric in reg.collect():
        if metric.name in ("synthscan_verdicts", "synthscan_dead_letters"):
            done += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return int(done)


def run(bootstrap: str, args: argparse.Namespace) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    src, dst, dlq = f"soak-in-{tag}", f"soak-v-{tag}", f"soak-dlq-{tag}"
    create_topics(bootstrap, {src: 2, dst: 1, dlq: 1})
    settings = ServiceSettings(
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": bootstrap,
            "group_id": f"soak-{tag}",
            "input_topics": [src],
            "verdict_topic": dst,
            "dead_letter_topic": dlq,
            "statistics_interval_ms": 1000,
        },
        model={"max_batch_size": 16},  # type: ignore[arg-type]
        batching={"max_wait_ms": 5},  # type: ignore[arg-type]
        http={"host": "127.0.0.1", "port": 0},  # type: ignore[arg-type]
        logging={"level": "warning"},  # type: ignore[arg-type]
    )
    service = Service(settings, detector=load_detector(args.model))
    samples: list[tuple[float, int, float]] = []  # (t, outputs, rss MiB)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append((time.monotonic(), outputs(service), rss_mib()))

    thread = service.start()
    if not service.wait_ready(120):
        raise SystemExit(f"service not ready: {service.error!r}")
    start_rss = rss_mib()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.monotonic()
    for start in range(0, args.events, args.chunk):  # keep a backlog without holding it all
        n = min(args.chunk, args.events - start)
        produce(bootstrap, src, events(start, n), rate=0)
        while outputs(service) < start + n - 2 * args.chunk:
            time.sleep(0.1)
    deadline = time.monotonic() + 600
    while outputs(service) < args.events and time.monotonic() < deadline:
        time.sleep(0.2)
    elapsed = time.monotonic() - began
    time.sleep(0.5)
    stop.set()
    sampler.join()
    service.stop()
    thread.join(60)
    done = outputs(service)

    def rss_at(count: int) -> float:
        return next((rss for _t, n, rss in samples if n >= count), samples[-1][2])

    half, end = rss_at(args.events // 2), samples[-1][2]
    return {
        "events": args.events,
        "outputs": done,
        "model": args.model,
        "seconds": round(elapsed, 1),
        "events_per_s": round(done / elapsed, 1),
        "rss_start_mib": round(start_rss, 1),
        "rss_half_mib": round(half, 1),
        "rss_end_mib": round(end, 1),
        "rss_peak_mib": round(max(s[2] for s in samples), 1),
        "growth_last_half_pct": round(100.0 * (end - half) / half, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=None, help="default: start a broker here")
    parser.add_argument("--model", default="stub", help="'stub' or a checkpoint path")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()
    configure_logging("warning", "console")
    if args.bootstrap is not None:
        result = run(args.bootstrap, args)
    else:
        with tempfile.TemporaryDirectory(prefix="soak-kafka-") as tmp:
            broker = KafkaBroker(Path(tmp))
            broker.start()
            try:
                result = run(broker.bootstrap_servers, args)
            finally:
                broker.stop()
    print(json.dumps(result))
    print(
        f"\n{result['outputs']}/{result['events']} events in {result['seconds']} s "
        f"({result['events_per_s']}/s), model={result['model']}\n"
        f"RSS MiB: start {result['rss_start_mib']}, half {result['rss_half_mib']}, "
        f"end {result['rss_end_mib']}, peak {result['rss_peak_mib']}\n"
        f"growth over the last half: {result['growth_last_half_pct']} % (target < 5 %)"
    )
    return 0 if result["outputs"] == result["events"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
