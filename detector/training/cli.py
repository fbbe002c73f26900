"""``python -m detector {train,calibrate,evaluate,synth-fakes}`` (added to the detector's CLI)."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import get_args

from detector.arguments import add_arch_argument
from detector.backbones import BACKBONES
from detector.model import LocalBackbone
from detector.patches import PatchStrategy
from detector.representation import InputRepr

Subparsers = argparse._SubParsersAction


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="decoding worker processes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_train(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train GLFF or the global-only baseline")
    p.add_argument("--train", help="CNNDetection-layout folder or manifest CSV (required)")
    p.add_argument("--val", help="validation folder or manifest CSV (required)")
    p.add_argument("--train-split", help="manifest split of the training rows (e.g. train)")
    p.add_argument("--val-split", help="manifest split of the validation rows (e.g. val)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs)")
    add_arch_argument(p)
    p.add_argument("--patches", default="psm", choices=get_args(PatchStrategy))
    p.add_argument("--backbone", default="resnet50", choices=sorted(BACKBONES))
    p.add_argument(
        "--backbone-weights",
        default="imagenet",
        help="'imagenet', a .pth state dict, or 'none' for random init",
    )
    p.add_argument("--local-backbone", default="shared", choices=get_args(LocalBackbone))
    p.add_argument(
        "--input-repr",
        default="rgb",
        choices=get_args(InputRepr),
        help="backbone input: RGB, the upsampling residual x - up(down(x)), or both (6 channels)",
    )
    p.add_argument(
        "--extra-train",
        action="append",
        default=[],
        metavar="DATA",
        help="more training data (folder or manifest CSV, e.g. synth-fakes output); repeatable",
    )
    p.add_argument(
        "--debias",
        action="store_true",
        help="format debiasing: every image of both classes gets the same random crop and JPEG "
        "re-encode (q 65-100) in training and validation",
    )
    p.add_argument(
        "--freeze-backbone",
        type=int,
        default=0,
        metavar="N",
        help="freeze the first N backbone trunk modules (and their batch norm)",
    )
    _add_schedule_arguments(p)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on GPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train-batches", type=int, help="at most N batches per epoch")
    p.add_argument("--name", default="", help="checkpoint name (default <arch>-<backbone>)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/last.safetensors with its saved configuration (only --epochs, "
        "--workers, --device, --limit-train-batches and --no-progress apply)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)


def _add_schedule_arguments(p: argparse.ArgumentParser) -> None:
    """Optimisation, early stopping and augmentation options of ``train``."""
    p.add_argument("--epochs", type=int, default=100, help="maximum epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--accum-steps", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument(
        "--monitor",
        default="acc",
        choices=["acc", "ap"],
        help="validation metric for best checkpoint and early stopping",
    )
    p.add_argument("--patience", type=int, default=15, help="epochs without improvement to stop")
    p.add_argument("--lr-patience", type=int, default=5, help="epochs without improvement to decay")
    p.add_argument("--lr-factor", type=float, default=0.1)
    p.add_argument("--min-lr", type=float, default=1e-6, help="stop instead of decaying below")
    p.add_argument("--blur-prob", type=float, default=0.1)
    p.add_argument("--jpeg-prob", type=float, default=0.1)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument(
        "--clean-val",
        action="store_true",
        help="validate on clean images (default: authors' blur 1.5 / JPEG 65)",
    )


def _add_calibrate(sub: Subparsers) -> None:
    p = sub.add_parser("calibrate", help="choose the decision threshold on validation data")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", required=True, type=Path, help="validation folder or manifest CSV")
    p.add_argument("--split", help="manifest split (e.g. val); never test")
    p.add_argument("--method", default="fpr", choices=["fpr", "f1"])
    p.add_argument("--target-fpr", type=float, default=0.05, help="for --method fpr")
    p.add_argument(
        "--band-fpr", type=float, default=0.01, help="decision band: real photos decided synthetic"
    )
    p.add_argument(
        "--band-tpr", type=float, default=0.95, help="decision band: fakes kept out of 'real'"
    )
    p.add_argument("--out", type=Path, help="output checkpoint (default: overwrite)")
    p.add_argument("--half", action="store_true", help="store fp16 weights")
    _common(p)
    p.set_defaults(func=_calibrate)


def _add_evaluate(sub: Subparsers) -> None:
    p = sub.add_parser("evaluate", help="AP/AUC/accuracy per generator, Table 2, robustness")
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--data", required=True, type=Path, help="test folder or manifest CSV")
    p.add_argument("--split", help="manifest split (e.g. val)")
    p.add_argument(
        "--group-by",
        default="generator",
        help="generator (top folder), group (full folder), label or a manifest column",
    )
    p.add_argument("--families", help="families YAML, or a shipped name: cnndetection")
    p.add_argument("--name", action="append", dest="names", help="method name per checkpoint")
    p.add_argument("--out", type=Path, default=Path("eval"), help="report folder")
    p.add_argument("--robustness", action="store_true", help="blur/JPEG sweeps and Fig. 3 plots")
    p.add_argument(
        "--reencode-jpeg",
        type=int,
        nargs="+",
        default=[],
        metavar="Q",
        help="also report with every image (both classes) re-encoded as JPEG at quality Q, "
        "e.g. 90 75 (reports under OUT/jpeg-qQ/)",
    )
    p.add_argument("--blur-sigmas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    p.add_argument(
        "--jpeg-qualities", type=int, nargs="+", default=[100, 90, 80, 70, 60, 50, 40, 30]
    )
    _common(p)
    p.set_defaults(func=_evaluate)


def _add_synth_fakes(sub: Subparsers) -> None:
    from detector.training.synth_fakes import FACTORS, UPSAMPLE_KINDS

    p = sub.add_parser(
        "synth-fakes",
        help="train small autoencoders on real photos; write each photo's reconstruction as a fake",
    )
    p.add_argument(
        "real", type=Path, help="folder of real photos, or a manifest CSV (label 0 rows)"
    )
    p.add_argument("--out", required=True, type=Path, help="folder for the fakes + manifest.csv")
    p.add_argument("--split", help="manifest split to read (e.g. train)")
    p.add_argument("--kinds", nargs="+", default=list(UPSAMPLE_KINDS), choices=UPSAMPLE_KINDS)
    p.add_argument("--factors", nargs="+", type=int, default=[2, 4], choices=FACTORS)
    p.add_argument("--steps", type=int, default=150, help="training steps per autoencoder")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=64, help="training crop side")
    p.add_argument("--width", type=int, default=32, help="autoencoder channels")
    p.add_argument("--limit", type=int, help="use only the first N photos")
    p.add_argument(
        "--no-colour-match",
        action="store_true",
        help="keep the raw reconstruction colours (default: matched to the photo's)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_synth_fakes)


def register(subparsers: Subparsers) -> None:
    """Add ``train``, ``calibrate``, ``evaluate`` and ``synth-fakes`` to ``python -m detector``."""
    _add_train(subparsers)
    _add_calibrate(subparsers)
    _add_evaluate(subparsers)
    _add_synth_fakes(subparsers)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def _train(args: argparse.Namespace) -> int:
    from detector.training.config import TrainConfig
    from detector.training.trainer import resume_config, train

    _logging()
    values = {
        "train": args.train,
        "val": args.val,
        "out": args.out,
        "train_split": args.train_split,
        "val_split": args.val_split,
        "arch": args.arch,
        "patches": args.patches,
        "backbone": args.backbone,
        "backbone_weights": None if args.backbone_weights == "none" else args.backbone_weights,
        "local_backbone": args.local_backbone,
        "input_repr": args.input_repr,
        "extra_train": tuple(args.extra_train),
        "debias": args.debias,
        "freeze_backbone": args.freeze_backbone,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "accum_steps": args.accum_steps,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "monitor": args.monitor,
        "patience": args.patience,
        "lr_patience": args.lr_patience,
        "lr_factor": args.lr_factor,
        "min_lr": args.min_lr,
        "blur_prob": args.blur_prob,
        "jpeg_prob": args.jpeg_prob,
        "hflip": not args.no_flip,
        "val_degrade": not args.clean_val,
        "workers": args.workers,
        "device": args.device,
        "amp": not args.no_amp,
        "seed": args.seed,
        "limit_train_batches": args.limit_train_batches,
        "name": args.name,
        "version": args.version,
        "progress": not args.no_progress,
    }
    known = {f.name for f in fields(TrainConfig)}
    assert set(values) <= known
    if not args.resume and (args.train is None or args.val is None):
        raise SystemExit("error: train needs --train and --val (unless --resume)")
    if args.resume:
        runtime = ("epochs", "workers", "device", "progress", "limit_train_batches")
        cfg = resume_config(Path(args.out), {k: values[k] for k in runtime})
    else:
        cfg = TrainConfig(**values)
    result = train(cfg, resume=args.resume)
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in result.__dict__.items()}))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    from detector.runtime import default_threads
    from detector.training.evaluate import calibrate_checkpoint

    _logging()
    torch.set_num_threads(default_threads())  # one core left to decoding
    cal, sha = calibrate_checkpoint(
        args.checkpoint,
        args.data,
        args.out or args.checkpoint,
        split=args.split,
        method=args.method,
        target_fpr=args.target_fpr,
        band_fpr=args.band_fpr,
        band_tpr=args.band_tpr,
        half=args.half,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
    )
    print(json.dumps({"out": str(args.out or args.checkpoint), "sha256": sha, **cal.to_dict()}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from detector.runtime import default_threads
    from detector.training.evaluate import evaluate
    from detector.training.taxonomy import load_families

    _logging()
    torch.set_num_threads(default_threads())  # one core left to decoding
    families = load_families(args.families) if args.families else None
    paths = evaluate(
        args.checkpoints,
        args.data,
        args.out,
        split=args.split,
        group_by=args.group_by,
        families=families,
        names=args.names,
        robustness=args.robustness,
        blur_sigmas=args.blur_sigmas,
        jpeg_qualities=args.jpeg_qualities,
        reencode_jpeg=args.reencode_jpeg,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
    )
    if "table2_md" in paths:
        print(paths["table2_md"].read_text())
    print(paths["groups_md"].read_text())
    for quality in args.reencode_jpeg:
        print(f"every image re-encoded as JPEG q{quality}:")
        print(paths[f"jpeg_q{quality}_groups_md"].read_text())
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


def _synth_fakes(args: argparse.Namespace) -> int:
    from detector.training.synth_fakes import SynthConfig, synthesize

    _logging()
    cfg = SynthConfig(
        kinds=tuple(args.kinds),
        factors=tuple(args.factors),
        steps=args.steps,
        batch_size=args.batch_size,
        crop=args.crop,
        width=args.width,
        seed=args.seed,
        match_colour=not args.no_colour_match,
    )
    manifest = synthesize(
        args.real, args.out, cfg, split=args.split, limit=args.limit, progress=not args.no_progress
    )
    print(json.dumps({"manifest": str(manifest)}))
    return 0
