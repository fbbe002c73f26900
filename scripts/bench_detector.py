"""Benchmark the detector: batched engine vs a per-image implementation vs the compute floor.

Three ways to score the same decoded images with the same weights, in the same run:

(a) engine  - ``detector.Detector.predict``: images grouped by size, one padded uint8 batch moved
              to the device, global view and all patches cropped and resized by ``roi_align``
              on the device, 7 backbone passes per image batched as 2 calls.
(b) naive   - what the authors' reference code does: per image on the CPU with PIL, resize the
              short side to 224 and centre-crop for the global view; after PSM, crop and resize
              each of the 6 patches in a Python loop with PIL, convert each to a tensor and
              copy it to the device. The network calls are batched exactly as in (a), so the
              difference is the crop path.
(c) floor   - the bare backbone run 7 times on a ready ``[B, 3, 224, 224]`` batch already on the
              device: the compute that cannot be avoided.

Decoding is excluded from all three. Usage::

    python scripts/bench_detector.py --device cpu --backbone resnet50 --batch-sizes 1,4
    python scripts/bench_detector.py --device cuda --precision bf16 --batch-sizes 1,8,64,256
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from detector.checkpoint import CheckpointMetadata
from detector.crops import IMAGENET_MEAN, IMAGENET_STD
from detector.decode import DecodedImage, decode_image
from detector.engine import PRECISIONS, Detector
from detector.model import GLFF, ModelConfig, build_model
from detector.patches import select_patches

T = TypeVar("T")
MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (array - MEAN) / STD


def _global_view(image: Image.Image) -> Image.Image:
    w, h = image.size
    scale = 224 / min(w, h)
    resized = image.resize(
        (max(224, round(w * scale)), max(224, round(h * scale))), Image.Resampling.BILINEAR
    )
    left, top = (resized.width - 224) // 2, (resized.height - 224) // 2
    return resized.crop((left, top, left + 224, top + 224))


def naive_scores(
    model: GLFF, images: list[Image.Image], device: torch.device, autocast: Any
) -> torch.Tensor:
    """Per-image CPU preprocessing and a Python loop over patch crops (see module docstring)."""
    with torch.inference_mode(), autocast():
        views = torch.stack([_to_tensor(_global_view(im)) for im in images]).to(device)
        fmap = model.backbone(views.contiguous(memory_format=_fmt(model)))
        sizes = torch.tensor([[im.height, im.width] for im in images])
        boxes = select_patches(fmap, sizes, "psm").boxes.round().long().tolist()
        crops = []
        for image, image_boxes in zip(images, boxes, strict=True):
            for x0, y0, x1, y1 in image_boxes:
                patch = image.crop((x0, y0, x1, y1)).resize((224, 224), Image.Resampling.BILINEAR)
                crops.append(_to_tensor(patch).to(device))
        local = model.backbone(torch.stack(crops).contiguous(memory_format=_fmt(model)))
        g = F.relu(model.embed(fmap.mean(dim=(2, 3)))).unsqueeze(1)
        p = F.relu(model.embed(local.mean(dim=(2, 3)))).unflatten(0, (len(images), 6))
        fused, _ = model.fusion(torch.cat([p, g], dim=1))
        return torch.sigmoid(model.head(fused).squeeze(1).float()).cpu()


def _fmt(model: GLFF) -> torch.memory_format:
    return torch.channels_last if model.channels_last else torch.contiguous_format


def _time(fn: Callable[[], T], device: torch.device, repeats: int) -> tuple[float, T]:
    """Best (minimum) seconds of ``fn`` over ``repeats`` runs, and the last result.

    The minimum is the least disturbed run, which matters on a shared machine.
    """
    best, result = float("inf"), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def _measure(
    det: Detector,
    model: GLFF,
    pil: list[Image.Image],
    decoded: list[DecodedImage],
    autocast: Callable[[], Any],
    repeats: int,
) -> tuple[float, float, float, float]:
    """Best seconds per batch for (a) engine, (b) naive, (c) floor, and max score difference."""
    device = det.device
    floor_input = torch.randn(len(pil), 3, 224, 224, device=device)
    floor_input = floor_input.contiguous(memory_format=_fmt(model))

    def floor() -> bool:
        with torch.inference_mode(), autocast():
            for _ in range(7):
                model.backbone(floor_input)
        return True

    t_engine, preds = _time(lambda: det.predict(decoded), device, repeats)
    t_naive, scores = _time(lambda: naive_scores(model, pil, device, autocast), device, repeats)
    t_floor, _ = _time(floor, device, repeats)
    diff = float((torch.tensor([p.score for p in preds]) - scores).abs().max())
    return t_engine, t_naive, t_floor, diff


def make_images(n: int, sizes: list[tuple[int, int]], seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--sizes", default="256x256,384x512,720x1280", help="HxW,... cycled")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=args.backbone))
    assert isinstance(model, GLFF)
    det = Detector(
        model,
        CheckpointMetadata(config=model.config),
        device=args.device,
        precision=args.precision,
        max_batch=max(int(b) for b in args.batch_sizes.split(",")),
    )
    device, model = det.device, det.model
    assert isinstance(model, GLFF)
    dtype = PRECISIONS[args.precision]
    autocast: Callable[[], Any] = (
        contextlib.nullcontext
        if args.precision == "fp32"
        else lambda: torch.autocast(device.type, dtype=dtype)
    )
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device={device} ({name})"
        f" threads={torch.get_num_threads()} precision={args.precision} backbone={args.backbone}"
        f" image sizes={args.sizes} torch={torch.__version__}"
    )
    header = (
        f"{'batch':>5} | {'engine img/s':>12} {'ms/img':>8} | {'naive img/s':>11} {'ms/img':>8} |"
        f" {'floor img/s':>11} {'ms/img':>8} | {'speedup':>12} {'engine/floor':>12} |"
        " max|dscore|"
    )
    print(header)
    print("-" * len(header))
    warm = make_images(1, sizes)  # type: ignore[arg-type]
    _measure(det, model, warm, [decode_image(im) for im in warm], autocast, 1)  # warm-up
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        pil = make_images(batch, sizes)  # type: ignore[arg-type]
        decoded: list[DecodedImage] = [decode_image(im) for im in pil]
        t_engine, t_naive, t_floor, diff = _measure(
            det, model, pil, decoded, autocast, args.repeats
        )
        row = [(batch / t, 1000 * t / batch) for t in (t_engine, t_naive, t_floor)]
        print(
            f"{batch:>5} | {row[0][0]:>12.2f} {row[0][1]:>8.1f} |"
            f" {row[1][0]:>11.2f} {row[1][1]:>8.1f} |"
            f" {row[2][0]:>11.2f} {row[2][1]:>8.1f} | {t_naive / t_engine:>11.2f}x"
            f" {t_engine / t_floor:>11.2f}x | {diff:.4f}"
        )


if __name__ == "__main__":
    main()
