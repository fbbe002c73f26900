"""``python -m detector adapt``: teach a base checkpoint a new generator from a few examples."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from detector.checkpoint import CheckpointMetadata
    from detector.model import GLFF, GlobalOnly
    from detector.training.datasets import Sample

Subparsers = argparse._SubParsersAction

log = logging.getLogger(__name__)


def register(sub: Subparsers) -> None:
    """Add ``adapt`` to the ``python -m detector`` parser."""
    p = sub.add_parser(
        "adapt",
        help="few-shot adapter for a new generator (head, LoRA or full fine-tuning of the tail)",
    )
    p.add_argument("--base", required=True, type=Path, help="base safetensors checkpoint")
    p.add_argument(
        "--base-sha256", help="refuse the base unless its file has this sha256 (recommended)"
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="folder with 0_real/ and 1_fake/ (CNNDetection layout) or a manifest CSV",
    )
    p.add_argument("--split", help="manifest split to use (e.g. train)")
    p.add_argument(
        "--family",
        help="manifest: only fakes of this family column value (real photos: every label-0 row)",
    )
    p.add_argument("--generator", required=True, help="name of the new generator (attribution)")
    p.add_argument("--shots", type=int, required=True, help="N fakes and N reals drawn (seeded)")
    p.add_argument("--method", default="lora", choices=["head", "lora", "full"])
    p.add_argument("--rank", type=int, default=8, help="LoRA rank (alpha = 2 * rank)")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.0, help="0: 1e-2 (head), 1e-3 (lora), 1e-4 (full)")
    p.add_argument("--threshold", type=float, default=0.5, help="the adapter's decision threshold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="adapter .safetensors to write")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_adapt)


def _adapt(args: argparse.Namespace) -> int:
    from detector.adapters.file import AdapterMetadata, save_adapter
    from detector.adapters.tail import Tail, default_split
    from detector.adapters.train import AdaptConfig, extract_features, precompute, train
    from detector.training.datasets import load_samples

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    progress = not args.no_progress
    base, meta, base_sha = _load_base(args)
    chosen = _draw_shots(args, load_samples(args.data, args.split))
    torch.manual_seed(args.seed)
    split = default_split(base)
    began = time.monotonic()
    data, kept = extract_features(base, split, [s.path for s in chosen], progress=progress)
    if len(kept) < len(chosen):
        log.warning("skipped %d images that do not decode", len(chosen) - len(kept))
    base_tail = Tail.of(base, split, copy_weights=True)
    data.pre = precompute(base_tail, data.feats)
    labels = torch.tensor([chosen[i].label for i in kept])
    cfg = AdaptConfig(
        method=args.method,
        rank=args.rank,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
    )
    trained = train(base_tail, data, labels, cfg, progress=progress)
    adapter_meta = AdapterMetadata(
        generator=args.generator,
        method=args.method,
        split=split,
        base_sha256=base_sha,
        base_name=meta.name,
        base_version=meta.version,
        rank=args.rank if args.method == "lora" else 0,
        alpha=cfg.effective_alpha if args.method == "lora" else 0.0,
        shots=args.shots,
        seed=args.seed,
        threshold=args.threshold,
        data=_data_record(args, [chosen[i] for i in kept]),
        training={**cfg.to_dict(), "final_loss": round(trained.final_loss, 6)},
    )
    summary = {
        "out": str(args.out),
        "sha256": save_adapter(args.out, trained.tensors, adapter_meta),
        "generator": args.generator,
        "method": args.method,
        "base_sha256": base_sha,
        "images": len(kept),
        "final_loss": round(trained.final_loss, 6),
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(summary))
    return 0


def _load_base(args: argparse.Namespace) -> tuple[GLFF | GlobalOnly, CheckpointMetadata, str]:
    """The base checkpoint's model (checked adaptable), metadata and file sha256."""
    from detector.adapters.tail import check_adaptable
    from detector.checkpoint import file_sha256, load_checkpoint
    from detector.errors import CheckpointError

    base_sha = file_sha256(args.base)
    if args.base_sha256 and base_sha != args.base_sha256.lower():
        raise CheckpointError(f"base sha256 {base_sha} != expected {args.base_sha256}")
    if args.out.suffix != ".safetensors":
        raise SystemExit("error: --out must end in .safetensors")
    model, meta = load_checkpoint(args.base)
    return check_adaptable(model), meta, base_sha


def _draw_shots(args: argparse.Namespace, samples: list[Sample]) -> list[Sample]:
    """``--shots`` fakes (of ``--family`` when given) and as many reals, drawn with ``--seed``."""
    fakes = sorted(
        (s for s in samples if s.label == 1 and args.family in (None, s.group)),
        key=lambda s: str(s.path),
    )
    reals = sorted((s for s in samples if s.label == 0), key=lambda s: str(s.path))
    if len(fakes) < args.shots or len(reals) < args.shots:
        raise SystemExit(
            f"error: --shots {args.shots} needs {args.shots} fakes and reals; "
            f"{args.data} has {len(fakes)} fakes and {len(reals)} reals"
        )
    rng = np.random.default_rng(args.seed)
    chosen = [fakes[i] for i in sorted(rng.choice(len(fakes), args.shots, replace=False))]
    chosen += [reals[i] for i in sorted(rng.choice(len(reals), args.shots, replace=False))]
    return chosen


def _data_record(args: argparse.Namespace, used: list[Sample]) -> dict[str, Any]:
    """The adapter file's ``data``: where the images came from and which ones were used."""
    root = args.data if args.data.is_dir() else args.data.parent

    def rel(path: Path) -> str:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            return str(path)

    return {
        "source": str(args.data),
        "split": args.split,
        "family": args.family,
        "fakes": [rel(s.path) for s in used if s.label == 1],
        "reals": [rel(s.path) for s in used if s.label == 0],
    }
