"""Check that a checkpoint of ``ship.py``, loaded by the inference engine, scores what it saw.

Re-scores the first N validation images of ``ship.py``'s record through
:class:`detector.engine.Detector` (fp16 weights as shipped), under the same condition the
head was trained and calibrated on, and prints the largest score difference and whether any
decision at the stored threshold changed.

    python -m scripts.generalization.verify_ship \
        detector/checkpoints/demo-mobilenet_v2.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from detector.engine import Detector
from scripts.generalization.features import condition_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--record", type=Path, default=Path("runs/study"))
    ap.add_argument("--cond", default="rand")
    ap.add_argument("-n", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(1)
    expected: dict[str, float] = json.loads((args.record / "ship-val-scores.json").read_text())
    det = Detector.from_checkpoint(args.checkpoint, device="cpu")
    items = list(expected.items())[: args.n]
    images = [condition_image(Path(p), args.cond) for p, _ in items]
    preds = det.predict(images)
    diffs = [abs(p.score - s) for p, (_, s) in zip(preds, items, strict=True)]
    flips = sum(
        (p.score >= det.metadata.threshold) != (s >= det.metadata.threshold)
        for p, (_, s) in zip(preds, items, strict=True)
    )
    print(
        json.dumps(
            {
                "images": len(items),
                "max_abs_diff": max(diffs),
                "decision_flips": flips,
                "threshold": det.metadata.threshold,
            }
        )
    )


if __name__ == "__main__":
    main()
