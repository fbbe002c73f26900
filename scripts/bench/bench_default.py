"""CPU throughput of the default checkpoint against the previous one, and the zero-shot signal's
cost, in the same run on the same images (rounds interleaved, median kept).

    python -m scripts.bench.bench_default [--rounds 3] [--images 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detector import Detector
from detector.checkpoint import DEFAULT_CHECKPOINT
from detector.zeroshot import load_zeroshot

CHECKPOINTS = DEFAULT_CHECKPOINT.parent
PREVIOUS = CHECKPOINTS / "demo-mobilenet_v2.safetensors"
ZEROSHOT = CHECKPOINTS / "zeroshot-fsd-devset.safetensors"
SIZES = ((512, 512), (480, 640), (640, 640), (384, 512))


def images(n: int) -> list[Image.Image]:
    """Real photo pixels (scikit-image's samples) cut to a cycle of upload sizes."""
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    out = []
    for i in range(n):
        photo = Image.fromarray(photos[i % len(photos)]).convert("RGB")
        h, w = SIZES[i % len(SIZES)]
        out.append(photo.resize((w, h), Image.Resampling.BICUBIC))
    return out


def rate(run: Callable[[], object], n: int) -> float:
    began = time.perf_counter()
    run()
    return n / (time.perf_counter() - began)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pics = images(args.images)
    arrays = [np.asarray(p) for p in pics]
    models = {
        name: Detector.from_checkpoint(path, device="cpu", max_batch_size=args.batch)
        for name, path in (("previous", PREVIOUS), ("default", DEFAULT_CHECKPOINT))
    }
    zeroshot = load_zeroshot(ZEROSHOT)
    runs: dict[str, Callable[[], object]] = {
        name: (lambda d=d: d.predict(pics)) for name, d in models.items()
    }
    runs["zeroshot"] = lambda: [zeroshot.score(a) for a in arrays]
    for run in runs.values():
        run()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            rates[name].append(rate(run, len(pics)))
    med = {name: statistics.median(r) for name, r in rates.items()}
    print(
        f"images={len(pics)} sizes={SIZES} threads={args.threads} batch={args.batch} "
        f"runtime={models['default'].runtime} rounds={args.rounds}"
    )
    for name, value in med.items():
        print(
            f"{name:9s} {value:6.2f} img/s  {1000 / value:7.1f} ms/img  "
            f"x{value / med['previous']:.2f} of previous"
        )
    print(f"files: previous={Path(PREVIOUS).name} default={Path(DEFAULT_CHECKPOINT).name}")


if __name__ == "__main__":
    main()
