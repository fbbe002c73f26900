"""Aggregate rate of 1, 2, 3 ... service processes in one group on a 12-partition topic.

For each instance count: fresh topics and group, the processes started and ready
(``/readyz``), then a backlog of ``--events`` inline images produced at once; the rate is
events / seconds from the first produce to the last verdict (read_committed). The model is a
random-init global-only MobileNetV2 (one forward pass per image) unless ``--checkpoint``.

    python -m scripts.bench.bench_scaleout [--bootstrap HOST:PORT] [--instances 1,2,3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from devkafka.broker import KafkaBroker
from scripts.bench.support import VerdictClock, create_topics, image_events, png, produce

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 12


def tiny_checkpoint(folder: Path) -> Path:
    import torch

    from detector.checkpoint import CheckpointMetadata, save_checkpoint
    from detector.model import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(arch="global_only", backbone="mobilenet_v2", patch_strategy="none")
    path = folder / "global-only-mnv2.safetensors"
    meta = CheckpointMetadata(config=config, name="bench-global-only", version="0.0.1")
    save_checkpoint(path, build_model(config, backbone_weights=None), meta)
    return path


def start(bootstrap: str, topics: dict[str, str], checkpoint: Path, name: str, log: Path) -> Any:
    sets = {
        "kafka.bootstrap_servers": bootstrap,
        "kafka.group_id": topics["group"],
        "kafka.input_topics": topics["input"],
        "kafka.verdict_topic": topics["verdicts"],
        "kafka.dead_letter_topic": topics["dlq"],
        "kafka.instance_id": f"{topics['group']}-{name}",
        "kafka.session_timeout_ms": "6000",
        "kafka.exactly_once": topics["eos"],
        "model.checkpoint": str(checkpoint),
        "model.device": "cpu",
        "model.precision": "fp32",
        "model.torch_threads": "1",
        "http.host": "127.0.0.1",
        "http.port": "0",
        "logging.level": "info",
        "cache.enabled": "false",  # every event is scored
    }
    argv = [sys.executable, "-m", "consumer", "run"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHSCAN_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def ready(log: Path) -> bool:
    for line in log.read_text(errors="replace").splitlines():
        if '"http_listening"' in line:
            port = json.loads(line)["port"]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False
    return False


def measure(bootstrap: str, checkpoint: Path, count: int, events: int, eos: bool, tmp: Path) -> str:
    run = uuid.uuid4().hex[:8]
    topics = {
        "input": f"scale-in-{run}",
        "verdicts": f"scale-v-{run}",
        "dlq": f"scale-dlq-{run}",
        "group": f"scale-g-{run}",
        "eos": str(eos).lower(),
    }
    create_topics(bootstrap, {topics["input"]: PARTITIONS, topics["verdicts"]: 1, topics["dlq"]: 1})
    logs = [tmp / f"{run}-{i}.log" for i in range(count)]
    procs = [start(bootstrap, topics, checkpoint, str(i), log) for i, log in enumerate(logs)]
    try:
        deadline = time.monotonic() + 300
        while not all(ready(log) for log in logs):
            if time.monotonic() > deadline:
                return f"{count} instances: not all ready in 300 s"
            time.sleep(1)
        time.sleep(3)  # let the last rebalance settle
        clock = VerdictClock(bootstrap, topics["verdicts"])
        began = time.time()
        produce(
            bootstrap,
            topics["input"],
            image_events([png(i) for i in range(events)], events, "image/png"),
            0,
        )
        while len(clock.samples) < events and time.time() - began < 600:
            time.sleep(0.2)
        last = max(s[0] for s in clock.samples) if clock.samples else time.time()
        got = len(clock.samples)
        clock.close()
        seconds = last - began
        rate = got / seconds
        return f"{count} instance(s): {got}/{events} verdicts in {seconds:.1f} s = {rate:.1f}/s"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument("--events", type=int, default=240)
    parser.add_argument("--exactly-once", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    broker = None
    try:
        bootstrap = args.bootstrap
        if bootstrap is None:
            broker = KafkaBroker(tmp / "kafka", heap="256m")
            broker.start()
            bootstrap = broker.bootstrap_servers
        checkpoint = args.checkpoint or tiny_checkpoint(tmp)
        print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, {PARTITIONS} partitions")
        for count in (int(n) for n in args.instances.split(",")):
            print(
                measure(bootstrap, checkpoint, count, args.events, args.exactly_once, tmp),
                flush=True,
            )
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
