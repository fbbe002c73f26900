"""Command line: ``python -m detector {predict,init-checkpoint,convert}``.

``adapt`` (few-shot adapters, :mod:`detector.adapters.cli`) needs the training package too.

The training package adds ``train``, ``calibrate`` and ``evaluate`` through
``detector.training.cli.register(subparsers)`` when it is installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from detector.backbones import BACKBONES
from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.errors import DetectorError
from detector.model import ModelConfig, build_model, count_parameters

__all__ = ["build_parser", "main"]


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("predict", help="score images; one JSON line per image")
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--checkpoint", required=True, type=Path, help="safetensors checkpoint")
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        type=Path,
        dest="adapters",
        help="few-shot adapter file (repeatable): adds an 'attribution' field per image",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--deterministic", action="store_true", help="reproducible kernels and RNG")
    p.add_argument("--overlay", type=Path, help="write <stem>.overlay.png with boxes here")
    p.set_defaults(func=_predict)


def _add_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init-checkpoint", help="write a random- or ImageNet-initialised checkpoint")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--arch", default="glff", choices=["glff", "cnn_aug"])
    p.add_argument("--backbone", default="resnet50", choices=sorted(BACKBONES))
    p.add_argument("--patch-strategy", default=None, choices=["psm", "random", "rsz448"])
    p.add_argument("--local-backbone", default="shared", choices=["shared", "separate"])
    p.add_argument("--suppression", default="grid", choices=["grid", "iou"])
    p.add_argument(
        "--backbone-weights",
        default=None,
        help="'imagenet' (offline file for mobilenet_v2, else torchvision download) or a .pth path",
    )
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--name", default="glff-init")
    p.add_argument("--version", default="0.0.0")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_init_checkpoint)


def _add_convert(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("convert", help="import the authors' .pth state dict (trusted files only)")
    p.add_argument("src", type=Path, help="authors' state dict (read with weights_only=True)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--backbone", default="resnet50", choices=sorted(BACKBONES))
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--name", default="glff-authors")
    p.add_argument("--version", default="converted")
    p.add_argument(
        "--rename", action="append", default=[], metavar="OLD=NEW", help="extra prefix rename"
    )
    p.set_defaults(func=_convert)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m detector`` parser, with the training commands when available."""
    parser = argparse.ArgumentParser(
        prog="python -m detector", description="GLFF synthetic-image detector"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_init(sub)
    _add_convert(sub)
    try:
        training_cli = importlib.import_module("detector.training.cli")  # owned by training work
    except ModuleNotFoundError as exc:  # only a missing training package is tolerated
        if exc.name not in ("detector.training", "detector.training.cli"):
            raise
        training_cli = None
    if training_cli is not None:
        training_cli.register(sub)
        from detector.adapters.cli import register as register_adapt

        register_adapt(sub)
    return parser


def _predict(args: argparse.Namespace) -> int:
    from detector.decode import decode_image
    from detector.engine import Detector
    from detector.overlay import save_overlay

    det = Detector.from_checkpoint(
        args.checkpoint,
        device=args.device,
        precision=args.precision,
        deterministic=args.deterministic,
        max_batch=args.batch_size,
        adapters=args.adapters,
    )
    failures = 0
    paths: list[Path] = list(args.images)
    for start in range(0, len(paths), args.batch_size):
        chunk = paths[start : start + args.batch_size]
        decoded, good = [], []
        for path in chunk:
            try:
                decoded.append(decode_image(path, det.limits))
                good.append(path)
            except DetectorError as exc:
                failures += 1
                error = {"type": type(exc).__name__, "message": str(exc)}
                print(json.dumps({"path": str(path), "error": error}), flush=True)
        for path, image, pred in zip(good, decoded, det.predict(decoded), strict=True):
            record = {"path": str(path), **pred.to_dict(), "model": det.info.name}
            if args.overlay is not None:
                out = save_overlay(image, pred, args.overlay / f"{path.stem}.overlay.png")
                record["overlay"] = str(out)
            print(json.dumps(record), flush=True)
    return 1 if failures else 0


def _init_checkpoint(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    strategy = args.patch_strategy or ("none" if args.arch == "cnn_aug" else "psm")
    config = ModelConfig(
        arch=args.arch,
        backbone=args.backbone,
        patch_strategy=strategy,
        local_backbone=args.local_backbone,
        suppression=args.suppression,
    )
    model = build_model(config, backbone_weights=args.backbone_weights)
    init = "imagenet" if args.backbone_weights else "random"
    metadata = CheckpointMetadata(
        config=config,
        name=args.name,
        version=args.version,
        threshold=args.threshold,
        training_data={"summary": "untrained", "backbone_init": init},
        training={"init": init, "seed": args.seed, "backbone_weights": args.backbone_weights},
    )
    sha = save_checkpoint(args.out, model, metadata)
    info = {"out": str(args.out), "sha256": sha, "parameters": count_parameters(model)}
    print(json.dumps(info))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from detector.convert import convert_file

    renames = dict(item.split("=", 1) for item in args.rename)
    config = ModelConfig(backbone=args.backbone)
    metadata = CheckpointMetadata(
        config=config, name=args.name, version=args.version, threshold=args.threshold
    )
    sha = convert_file(args.src, args.out, config, metadata, renames)
    print(json.dumps({"out": str(args.out), "sha256": sha}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DetectorError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
