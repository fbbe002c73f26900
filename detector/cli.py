"""Command line: ``python -m detector {predict,init-checkpoint,convert,zeroshot}``.

``zeroshot`` (the real-only forensic self-description signal) is :mod:`detector.zeroshot.cli`.

``adapt`` (few-shot adapters) comes from :mod:`detector.adapters.cli`, and ``train``,
``calibrate``, ``evaluate`` and ``synth-fakes`` from :mod:`detector.training.cli`, each through
its ``register(subparsers)``; shared options live in :mod:`detector.arguments`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, get_args

import torch

from detector.adapters.cli import register as register_adapt
from detector.arguments import add_arch_argument
from detector.backbones import BACKBONES
from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.errors import DetectorError
from detector.model import (
    LocalBackbone,
    ModelConfig,
    PatchChoice,
    build_model,
    count_parameters,
)
from detector.options import PRECISION_CHOICES, RUNTIME_CHOICES, EngineOptions
from detector.patches import PatchStrategy
from detector.psm import Suppression
from detector.training.cli import register as register_training
from detector.zeroshot.cli import register as register_zeroshot

__all__ = ["build_parser", "main"]

ENGINE_DEFAULTS = EngineOptions()


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
    p.add_argument("--device", default=ENGINE_DEFAULTS.device, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default=ENGINE_DEFAULTS.precision, choices=PRECISION_CHOICES)
    p.add_argument("--batch-size", type=int, default=ENGINE_DEFAULTS.max_batch_size)
    p.add_argument("--deterministic", action="store_true", help="reproducible kernels and RNG")
    p.add_argument("--overlay", type=Path, help="write <stem>.overlay.png with boxes here")
    p.add_argument(
        "--no-provenance", action="store_true", help="skip C2PA/metadata/PDQ (pixels only)"
    )
    p.add_argument("--trust-anchors", type=Path, help="PEM bundle of trusted C2PA anchors")
    p.add_argument("--watermark", action="store_true", help="decode the SD/SDXL watermark")
    p.add_argument(
        "--uncertain-margin",
        type=float,
        default=None,
        help="half-width of the fallback 'uncertain' band for checkpoints without a stored "
        "decision_band (default: provenance.DecisionPolicy's)",
    )
    p.add_argument(
        "--runtime",
        default=ENGINE_DEFAULTS.runtime,
        choices=RUNTIME_CHOICES,
        help="auto (default): onnxruntime on a CPU when installed, else torch (batch norm "
        "folded); onnxruntime: CPU, needs the onnx extra",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: all CPUs but one, min 1)"
    )
    p.set_defaults(func=_predict)


def _add_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init-checkpoint", help="write a random- or ImageNet-initialised checkpoint")
    p.add_argument("--out", required=True, type=Path)
    add_arch_argument(p)
    p.add_argument("--backbone", default="resnet50", choices=sorted(BACKBONES))
    p.add_argument("--patch-strategy", default=None, choices=get_args(PatchStrategy))
    p.add_argument("--local-backbone", default="shared", choices=get_args(LocalBackbone))
    p.add_argument("--suppression", default="grid", choices=get_args(Suppression))
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
    """The ``python -m detector`` parser: its own commands, training's and ``adapt``."""
    parser = argparse.ArgumentParser(
        prog="python -m detector", description="GLFF synthetic-image detector"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_init(sub)
    _add_convert(sub)
    register_training(sub)
    register_adapt(sub)
    register_zeroshot(sub)
    return parser


def _predict(args: argparse.Namespace) -> int:
    from detector.decode import DecodedImage, decode_image
    from detector.engine import Detector
    from detector.overlay import save_overlay
    from detector.runtime import default_threads, prefetch

    torch.set_num_threads(args.threads or default_threads())
    det = Detector.from_checkpoint(
        args.checkpoint,
        device=args.device,
        precision=args.precision,
        deterministic=args.deterministic,
        max_batch_size=args.batch_size,
        runtime=args.runtime,
        adapters=args.adapters,
    )
    signals = _Signals(args)
    paths: list[Path] = list(args.images)
    Decoded = tuple[list[Path], list[DecodedImage], list[bytes | Path], list[str]]

    def decode_chunk(chunk: list[Path]) -> Decoded:
        good: list[Path] = []
        decoded: list[DecodedImage] = []
        blobs: list[bytes | Path] = []
        errors: list[str] = []
        for path in chunk:
            try:
                data = path.read_bytes() if path.is_file() else path
                decoded.append(decode_image(data, det.options.limits))
                good.append(path)
                blobs.append(data)
            except DetectorError as exc:
                error = {"type": type(exc).__name__, "message": str(exc)}
                errors.append(json.dumps({"path": str(path), "error": error}))
        return good, decoded, blobs, errors

    chunks = (paths[i : i + args.batch_size] for i in range(0, len(paths), args.batch_size))
    failures = 0
    for good, decoded, blobs, errors in prefetch(decode_chunk(c) for c in chunks):  # decode ahead
        for line in errors:
            print(line, flush=True)
        failures += len(errors)
        preds = det.predict(decoded)
        for path, image, pred, data in zip(good, decoded, preds, blobs, strict=True):
            sig = signals.fields(data, image, pred.score, pred.threshold, det.info.decision_band)
            record = {"path": str(path), "decision": sig.pop("decision"), "label": pred.label}
            record.update({**pred.to_dict(), "model": det.info.name, **sig})
            if args.overlay is not None:
                out = save_overlay(image, pred, args.overlay / f"{path.stem}.overlay.png")
                record["overlay"] = str(out)
            print(json.dumps(record), flush=True)
    return 1 if failures else 0


class _Signals:
    """Provenance, PDQ and the decision of ``predict`` (pure Python, no messaging layer)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from provenance import DecisionPolicy, Extractor, ProvenanceConfig

        margin = args.uncertain_margin
        self.policy = (
            DecisionPolicy() if margin is None else DecisionPolicy(uncertain_margin=margin)
        )
        self.extractor = None
        if not args.no_provenance:
            config = ProvenanceConfig(trust_anchors=args.trust_anchors, watermark=args.watermark)
            self.extractor = Extractor(config)

    def fields(
        self,
        data: object,
        image: Any,
        score: float,
        threshold: float,
        band: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        from provenance import decide

        report = None
        if self.extractor is not None and isinstance(data, bytes):
            report = self.extractor.extract(data, image.pixels.permute(1, 2, 0).numpy())
        decision, reasons = decide(score, threshold, report, self.policy, None, band)
        out: dict[str, Any] = {"decision": decision, "reasons": [asdict(r) for r in reasons]}
        if report is not None:
            out["provenance"] = {
                "findings": [asdict(f) for f in report.findings],
                "unreadable": [asdict(u) for u in report.unreadable],
                "c2pa_state": report.c2pa_state,
                "elapsed_ms": round(report.elapsed_ms, 3),
            }
            if report.pdq is not None:
                out["pdq"] = {"hash": report.pdq.hex, "quality": report.pdq.quality}
        return out


def _init_checkpoint(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    strategy: PatchChoice = args.patch_strategy or ("none" if args.arch == "global_only" else "psm")
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
