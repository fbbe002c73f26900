"""Cost of attribution: a detector with 0, 1 and 3 adapters on the same images.

Prints FLOPs per image (``torch.utils.flop_counter``) and wall time per image (median of
``--repeats``), each as a ratio to the plain detector measured in the same run.

    python -m scripts.bench.bench_adapters --checkpoint CKPT --adapter A.safetensors
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from detector import Detector, decode_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--adapter", type=Path, required=True, help="an adapter of the checkpoint")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    import io

    from PIL import Image

    images = []
    for _ in range(args.images):
        arr = torch.randint(0, 256, (args.size, args.size, 3), dtype=torch.uint8, generator=g)
        buf = io.BytesIO()
        Image.fromarray(arr.numpy()).save(buf, format="PNG")
        images.append(decode_image(buf.getvalue()))
    rows = []
    for count in (0, 1, 3):
        det = Detector.from_checkpoint(
            args.checkpoint, device="cpu", precision="fp32", adapters=[args.adapter] * count
        )
        det.predict(images[:1])  # warm
        with FlopCounterMode(display=False) as counter:
            det.predict(images[:1])
        flops = counter.get_total_flops()
        times = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            det.predict(images)
            times.append((time.perf_counter() - began) / len(images))
        rows.append((count, flops, statistics.median(times)))
    base_flops, base_time = rows[0][1], rows[0][2]
    print("| adapters | GFLOPs / image | x plain | s / image (median) | x plain |")
    print("|---|---|---|---|---|")
    for count, flops, secs in rows:
        print(
            f"| {count} | {flops / 1e9:.3f} | {flops / base_flops:.3f} | {secs:.3f} "
            f"| {secs / base_time:.2f} |"
        )


if __name__ == "__main__":
    main()
