"""Replay speed (events/s) against a real Kafka broker.

    python -m scripts.bench.bench_replay [--bootstrap 127.0.0.1:9092] [--model stub|PATH]
        [--events 1000] [--batch 16] [--output file|topic]

Produces ``--events`` inline PNG events (distinct images, so the cache never hits), then
replays the whole topic with ``run_replay`` and prints the JSON summary. ``--model stub``
answers at once (the replay machinery alone); a checkpoint path includes the model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from consumer.logs import configure_logging
from consumer.replay import ReplayOptions, run_replay
from consumer.settings import ServiceSettings
from scripts.bench.support import create_topics, image_events, load_detector, png, produce


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--model", default="stub", help="'stub' or a checkpoint path")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--output", choices=["file", "topic"], default="file")
    args = parser.parse_args()
    configure_logging("warning", "console")
    detector = load_detector(args.model)
    topic = f"bench-replay-{uuid.uuid4().hex[:8]}"
    create_topics(args.bootstrap, {topic: args.partitions})
    images = [png(i) for i in range(args.events)]
    produce(args.bootstrap, topic, image_events(images, args.events, "image/png"), rate=0)
    settings = ServiceSettings(
        kafka={"bootstrap_servers": args.bootstrap, "input_topics": [topic]},  # type: ignore[arg-type]
        model={"max_batch_size": args.batch},  # type: ignore[arg-type]
        batching={"max_wait_ms": 5},  # type: ignore[arg-type]
        logging={"level": "warning"},  # type: ignore[arg-type]
    )
    with tempfile.TemporaryDirectory() as tmp:
        options = ReplayOptions(
            topics=[topic],
            output_file=Path(tmp) / "out.jsonl" if args.output == "file" else None,
            output_topic=f"{topic}.audit" if args.output == "topic" else None,
            state_file=Path(tmp) / "state.json",
            progress=False,
        )
        began = time.monotonic()
        outcome = run_replay(options, settings, detector=detector)
        wall = time.monotonic() - began
    r = outcome.result
    print(
        json.dumps(
            {
                "model": args.model,
                "output": args.output,
                "events": args.events,
                "batch": args.batch,
                "verdicts": r.verdicts,
                "complete": r.complete,
                "loop_s": round(r.seconds, 3),
                "events_per_s": round(r.events_per_s, 1),
                "wall_s_incl_setup": round(wall, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
