"""Cost of the zero-shot self-description on CPU, one thread: whole image and per patch.

    python -m scripts.bench.bench_zeroshot [--artifact ART] [--repeats 3]

Prints one JSON line per setting: milliseconds per image at 512 and 2048 px (random pixels:
the cost does not depend on content), and per 224 px / 112 px box (the PSM's patch sizes).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from detector.zeroshot import DescribeParams, classical_filters, load_zeroshot
from detector.zeroshot.describe import describe_boxes, describe_image


def _ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifact", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-pixels", type=int, nargs="*", default=[4096, 2048])
    ap.add_argument("--neighbourhood", type=int, default=11)
    args = ap.parse_args()
    torch.set_num_threads(1)
    filters = load_zeroshot(args.artifact).filters if args.artifact else classical_filters()
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (512, 2048)}
    for cap in args.max_pixels:
        p = DescribeParams(neighbourhood=args.neighbourhood, max_pixels=cap)
        row: dict[str, object] = {"neighbourhood": p.neighbourhood, "max_pixels": cap}
        for side, img in images.items():
            row[f"ms_image_{side}"] = round(
                _ms(partial(describe_image, img, filters, p), args.repeats)
            )
        img = images[512]
        for box in (224, 112):
            boxes = torch.tensor([[0, 0, box, box], [box, 0, 2 * box, box], [0, box, box, 2 * box]])
            ms = _ms(partial(describe_boxes, img, boxes, filters, p), args.repeats) / 3
            row[f"ms_patch_{box}"] = round(ms)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
