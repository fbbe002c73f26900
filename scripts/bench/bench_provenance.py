"""Benchmark: provenance extraction and PDQ per image vs the model, in the same run.

The same images (scikit-image's sample photos, resized to ``--side``) are, in one process:

- hashed with PDQ (``provenance.pdq_hash`` on the decoded RGB pixels);
- run through the metadata sources (XMP, PNG text, EXIF, C2PA) as a plain file and as a
  C2PA-signed JPEG (a throwaway test certificate, so the C2PA SDK really validates);
- optionally decoded for the SD/SDXL invisible watermark (``--watermark``);
- scored by the detector (``--checkpoint``, default the demo model) in batches of
  ``--batch-size``: the model's time per image is the batch time divided by its size.

Every figure is the median over ``--repeats`` passes, in ms per image, and the last line gives
each cost as a fraction of the model's. Usage::

    python -m scripts.bench.bench_provenance --side 512 --repeats 5
    python -m scripts.bench.bench_provenance --checkpoint glff-r50.safetensors --watermark
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from detector import Detector, decode_image
from provenance import Extractor, ProvenanceConfig, pdq_hash
from provenance.watermark import read_watermark
from scripts.tools.c2pa_signing import c2pa_sign, make_pki

ROOT = Path(__file__).resolve().parents[2]

NAMES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field")


def _images(side: int) -> list[Image.Image]:
    from skimage import data

    return [
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((side, side)) for name in NAMES
    ]


def _median_ms(fn: Callable[[], object], items: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - began) * 1000.0 / items)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT / "detector/checkpoints/demo-glff-mobilenet_v2.safetensors"
    parser.add_argument("--checkpoint", type=Path, default=default)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--watermark", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    images = _images(args.side)
    n = len(images)
    jpegs = []
    for image in images:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90)
        jpegs.append(buf.getvalue())
    pki = make_pki()
    anchors = ROOT / "demo-out" / "bench-anchors.pem"
    anchors.parent.mkdir(exist_ok=True)
    anchors.write_bytes(pki.anchor_pem)
    signed = [c2pa_sign(data, "image/jpeg", pki.signer) for data in jpegs]
    decoded = [decode_image(data) for data in jpegs]
    rgbs = [d.pixels.permute(1, 2, 0).numpy() for d in decoded]
    extractor = Extractor(ProvenanceConfig(trust_anchors=anchors, pdq=False, timeout_s=60))
    detector = Detector.from_checkpoint(args.checkpoint, device=args.device, precision="fp32")
    detector.predict(decoded[:1])  # warm-up
    assert all(extractor.extract(s).c2pa_state == "Trusted" for s in signed)

    def model() -> None:
        for start in range(0, n, args.batch_size):
            detector.predict(decoded[start : start + args.batch_size])

    costs = {
        "pdq": _median_ms(lambda: [pdq_hash(rgb) for rgb in rgbs], n, args.repeats),
        "metadata_plain_jpeg": _median_ms(
            lambda: [extractor.extract(d) for d in jpegs], n, args.repeats
        ),
        "metadata_c2pa_signed": _median_ms(
            lambda: [extractor.extract(d) for d in signed], n, args.repeats
        ),
    }
    if args.watermark:
        costs["watermark"] = _median_ms(
            lambda: [read_watermark(rgb, 1 << 30) for rgb in rgbs], n, args.repeats
        )
    costs["model"] = _median_ms(model, n, args.repeats)
    name = detector.info.name
    print(
        f"bench_provenance: {n} images {args.side}x{args.side}, {name} on {args.device}, "
        f"batch {args.batch_size}, median of {args.repeats}, torch threads 1"
    )
    for key, ms in costs.items():
        print(f"  {key:<22} {ms:9.2f} ms/image")
    model_ms = costs["model"]
    ratios = ", ".join(f"{k} {v / model_ms:.1%}" for k, v in costs.items() if k != "model")
    print(f"  vs model ({model_ms:.1f} ms/image): {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
