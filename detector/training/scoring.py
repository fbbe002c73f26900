"""Running a model over a dataset: P(synthetic) for every sample, with progress and skips."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from detector.batching import group_by_size
from detector.fuse import inference_copy
from detector.runtime import prefetch
from detector.training.datasets import (
    Batch,
    ImageDataset,
    Item,
    Sample,
    SkipReport,
    Transform,
    collate_items,
)

log = logging.getLogger(__name__)


def model_logits(model: nn.Module, batch: Batch) -> torch.Tensor:
    """``float [B]`` logits of a GLFF or global-only model for a padded batch."""
    out = model(batch.pixels, batch.sizes)
    logits = out.logits if hasattr(out, "logits") else out
    return logits.reshape(-1).float()  # type: ignore[no-any-return,unused-ignore]


def header_size(path: Path) -> tuple[int, int]:
    """``(h, w)`` from the file header without decoding; ``(0, 0)`` when unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            return (h, w)
    except (OSError, ValueError):
        return (0, 0)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[object]:
    """fp16 autocast on CUDA when enabled; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def score_samples(
    model: nn.Module,
    samples: Sequence[Sample],
    *,
    transform: Transform | None = None,
    batch_size: int = 32,
    workers: int = 0,
    device: torch.device | str = "cpu",
    seed: int = 0,
    amp: bool = True,
    max_padded_pixels: int = 64 * 1024 * 1024,
    progress: bool = True,
    desc: str = "score",
) -> tuple[npt.NDArray[np.float64], SkipReport]:
    """P(synthetic) for each sample (NaN for files that could not be decoded).

    Images are batched by similar size (:func:`detector.batching.group_by_size` on header
    sizes) so that a few large photos do not pad a whole batch to their size.
    """
    device = torch.device(device)
    dataset = ImageDataset(samples, transform, seed=seed)
    sizes = [header_size(s.path) for s in samples]
    batches = group_by_size(sizes, batch_size, max_padded_pixels)
    loader: DataLoader[Item] = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_items,
        pin_memory=device.type == "cuda",
    )
    net = inference_copy(
        model, "torch", device=device
    )  # batch norm folded; ``model`` is left as it is
    scores = np.full(len(samples), np.nan, dtype=np.float64)
    skips = SkipReport(samples)
    batches_in = loader if workers else prefetch(loader)  # decode the next batch meanwhile
    for batch in tqdm(batches_in, desc=desc, unit="batch", disable=not progress, leave=False):
        skips.add(batch)
        if len(batch) == 0:
            continue
        on_device = batch.to(device)
        with autocast(device, amp):
            logits = model_logits(net, on_device)
        scores[batch.indices.numpy()] = torch.sigmoid(logits).double().cpu().numpy()
    if skips.count:
        log.warning("%s: %s", desc, skips.summary())
    return scores, skips
