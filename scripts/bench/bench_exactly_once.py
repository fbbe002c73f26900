"""The cost of exactly-once against at-least-once, measured on a real Kafka broker.

    python -m scripts.bench.bench_exactly_once [--bootstrap 127.0.0.1:9092] [--model stub|PATH]
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
import json
import statistics
import time
import uuid
from typing import Any

from consumer.logs import configure_logging
from consumer.serving.service import Service
from consumer.settings import ServiceSettings
from scripts.bench.support import (
    VerdictClock,
    create_topics,
    image_events,
    load_detector,
    pct,
    png,
    produce,
)

_NUMERIC = ("throughput_eps", "latency_p50_s", "latency_p95_s", "latency_max_s", "commits")


def run_case(args: argparse.Namespace, detector: Any, eos: bool, interval: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    src, dst, dlq = f"bench-eos-in-{tag}", f"bench-eos-v-{tag}", f"bench-eos-dlq-{tag}"
    create_topics(args.bootstrap, {src: 2, dst: 1, dlq: 1})
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
        model={"max_batch_size": args.batch},  # type: ignore[arg-type]
        batching={"max_wait_ms": 5},  # type: ignore[arg-type]
        http={"enabled": False},  # type: ignore[arg-type]
        logging={"level": "warning"},  # type: ignore[arg-type]
        cache={"enabled": False},  # type: ignore[arg-type]
    )
    images = [png(i) for i in range(16)]
    clock = VerdictClock(args.bootstrap, dst)
    service = Service(settings, detector=detector)
    thread = service.start()
    try:
        if not service.wait_ready(120):
            raise SystemExit(f"service not ready: {service.error!r}")
        began = time.time()
        produce(args.bootstrap, src, image_events(images, args.events, "image/png"), rate=0)
        ok = clock.wait_for(args.events, timeout=300)
        last = max(s[0] for s in clock.samples[: args.events])
        throughput = args.events / max(1e-6, last - began)
        n_paced = int(args.paced_rate * args.paced_seconds)
        paced = image_events(images, n_paced, "image/png")
        produce(args.bootstrap, src, paced, rate=args.paced_rate)
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
    detector = load_detector(args.model)
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
