"""Command-line options shared by ``python -m detector``'s commands (:mod:`detector.cli`) and
the training commands (:mod:`detector.training.cli`), so neither CLI imports the other's."""

from __future__ import annotations

import argparse
from typing import get_args

from detector.model import ARCH_ALIASES, Arch, canonical_arch

__all__ = ["add_arch_argument"]


def add_arch_argument(p: argparse.ArgumentParser) -> None:
    """``--arch glff|global_only``; the old names ``cnn_aug`` and ``global`` still work."""
    p.add_argument(
        "--arch",
        default="glff",
        type=canonical_arch,
        choices=get_args(Arch),
        help=f"model architecture (old names: {', '.join(sorted(ARCH_ALIASES))})",
    )
