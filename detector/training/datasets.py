"""Image datasets for training and evaluation.

Two sources of samples:

* the CNNDetection layout, found recursively: every folder that holds ``0_real/`` and/or
  ``1_fake/`` is a *group* (an LSUN class when training, a generator when testing), named by
  its path relative to the root (``biggan``, ``cyclegan/apple``; the root's own name when the
  root itself holds ``0_real/1_fake``);
* a manifest CSV with columns ``path,label`` and optionally ``split``, ``family`` and any
  other column (``source`` ...), paths relative to the CSV's folder.

Images keep their original resolution: the model does the global resize and cuts patches
from the original pixels, so batches are zero-padded by :func:`detector.batching.collate_images`.
Files that cannot be decoded are reported and skipped, and every batch says which.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from detector.batching import collate_images
from detector.decode import decode_image
from detector.errors import DetectorError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
CLASS_DIRS = {"0_real": 0, "1_fake": 1}

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]
"""An image transform: original-resolution RGB PIL image and a per-sample RNG in, image out."""


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``label`` is 1 for synthetic; ``group`` is its class/generator."""

    path: Path
    label: int
    group: str
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def generator(self) -> str:
        """Top-level folder of the group (``cyclegan`` for ``cyclegan/apple``)."""
        return self.group.split("/", 1)[0]


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def discover_folders(root: Path) -> list[Sample]:
    """All samples under ``root`` in the CNNDetection layout, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    leaves = sorted(
        {p.parent for name in CLASS_DIRS for p in root.rglob(name) if p.is_dir()},
        key=lambda p: p.as_posix(),
    )
    samples: list[Sample] = []
    for leaf in leaves:
        rel = leaf.relative_to(root).as_posix()
        group = root.resolve().name if rel == "." else rel
        for name, label in CLASS_DIRS.items():
            if (leaf / name).is_dir():
                samples += [Sample(p, label, group) for p in _images_in(leaf / name)]
    if not samples:
        raise ValueError(f"no images in a 0_real/ or 1_fake/ folder under {root}")
    return samples


def read_manifest(csv_path: Path, split: str | None = None) -> list[Sample]:
    """Samples of a manifest CSV (``path,label[,split,family,...]``), optionally one split.

    The group is the ``family`` column when present, else the path's parent folder; every
    other column is kept in :attr:`Sample.extra` (e.g. ``source``) for grouping reports.
    """
    csv_path = Path(csv_path)
    samples: list[Sample] = []
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}")
        for row in reader:
            if split is not None and row.get("split") != split:
                continue
            label = int(row["label"])
            if label not in (0, 1):
                raise ValueError(f"{csv_path}: label must be 0 or 1, got {label}")
            rel = Path(row["path"])
            group = row.get("family") or rel.parent.as_posix()
            extra = {k: v for k, v in row.items() if k not in ("path", "label") and v is not None}
            samples.append(Sample(csv_path.parent / rel, label, group, extra))
    if not samples:
        raise ValueError(f"{csv_path}: no rows" + (f" in split {split!r}" if split else ""))
    return samples


def load_samples(source: Path, split: str | None = None) -> list[Sample]:
    """Samples from a folder (CNNDetection layout) or a ``.csv`` manifest."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return read_manifest(source, split)
    if split is not None:
        raise ValueError("--split only applies to a manifest CSV")
    return discover_folders(source)


def group_key(sample: Sample, by: str) -> str:
    """Reporting key: ``generator``, ``group``, ``label`` or any manifest column."""
    if by == "generator":
        return sample.generator
    if by == "group":
        return sample.group
    if by == "label":
        return "real" if sample.label == 0 else "fake"
    if by in sample.extra:
        return sample.extra[by] or "(empty)"
    raise KeyError(f"cannot group by {by!r}: not a column of {sample.path}")


def load_rgb(path: Path) -> Image.Image:
    """Decode exactly like inference does (EXIF rotation, first frame, any mode -> RGB)."""
    decoded = decode_image(Path(path))
    return Image.fromarray(decoded.pixels.permute(1, 2, 0).numpy(), mode="RGB")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ``uint8 [3,H,W]``."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class Item:
    """What a worker hands back for one sample; ``pixels`` is None when it failed to decode."""

    index: int
    label: int
    pixels: torch.Tensor | None
    error: str = ""


class ImageDataset(Dataset[Item]):
    """Decodes samples at original resolution and applies a seeded per-sample transform.

    The RNG of sample ``i`` is derived from ``(seed, epoch, i)`` only, so results do not
    depend on the number of workers or their scheduling. Call :meth:`set_epoch` before each
    epoch (workers must not be persistent so they see the new epoch).
    """

    def __init__(
        self, samples: Sequence[Sample], transform: Transform | None = None, seed: int = 0
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def rng(self, index: int) -> np.random.Generator:
        """The per-sample random generator for the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> Item:
        sample = self.samples[index]
        try:
            img = load_rgb(sample.path)
        except (DetectorError, OSError, ValueError) as exc:
            return Item(index, sample.label, None, f"{type(exc).__name__}: {exc}")
        if self.transform is not None:
            img = self.transform(img, self.rng(index))
        return Item(index, sample.label, to_tensor(img))


@dataclass
class Batch:
    """A padded batch plus the samples that were skipped while building it."""

    pixels: torch.Tensor  # uint8 [B,3,Hmax,Wmax]
    sizes: torch.Tensor  # int64 [B,2] (h, w)
    labels: torch.Tensor  # float32 [B]
    indices: torch.Tensor  # int64 [B], positions in the dataset
    skipped: list[tuple[int, str]]  # (dataset index, error)

    def __len__(self) -> int:
        return int(self.labels.numel())

    def pin_memory(self) -> Batch:
        """Page-locked copies, for asynchronous host-to-device transfers."""
        return Batch(
            self.pixels.pin_memory(),
            self.sizes.pin_memory(),
            self.labels.pin_memory(),
            self.indices.pin_memory(),
            self.skipped,
        )

    def to(self, device: torch.device | str) -> Batch:
        """The tensors on ``device`` (non-blocking when pinned)."""
        return Batch(
            self.pixels.to(device, non_blocking=True),
            self.sizes.to(device, non_blocking=True),
            self.labels.to(device, non_blocking=True),
            self.indices,
            self.skipped,
        )


def collate_items(items: Sequence[Item]) -> Batch:
    """Pad the decoded images into one batch; failed items go to ``skipped``."""
    good = [it for it in items if it.pixels is not None]
    skipped = [(it.index, it.error) for it in items if it.pixels is None]
    if good:
        pixels, sizes = collate_images([it.pixels for it in good if it.pixels is not None])
    else:
        pixels = torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
        sizes = torch.zeros((0, 2), dtype=torch.int64)
    labels = torch.tensor([float(it.label) for it in good], dtype=torch.float32)
    indices = torch.tensor([it.index for it in good], dtype=torch.int64)
    return Batch(pixels, sizes, labels, indices, skipped)


def make_loader(
    dataset: ImageDataset,
    batch_size: int,
    *,
    shuffle: bool,
    workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
) -> DataLoader[Item]:
    """A loader of :class:`Batch` es; the shuffle order depends on ``seed`` and the epoch."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + dataset.epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate_items,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=False,
    )


class SkipReport:
    """Counts and remembers the files that could not be decoded."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._samples = samples
        self.errors: dict[str, str] = {}

    def add(self, batch: Batch) -> None:
        """Record a batch's skipped files."""
        for index, error in batch.skipped:
            self.errors[str(self._samples[index].path)] = error

    @property
    def count(self) -> int:
        """Number of distinct files skipped so far."""
        return len(self.errors)

    def summary(self, limit: int = 5) -> str:
        """One line for logs: the count and the first few files."""
        if not self.errors:
            return "0 files skipped"
        shown = "; ".join(f"{p}: {e}" for p, e in list(self.errors.items())[:limit])
        more = f" (+{self.count - limit} more)" if self.count > limit else ""
        return f"{self.count} corrupt/unreadable file(s) skipped: {shown}{more}"
