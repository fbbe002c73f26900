"""The training log: one row per epoch in ``log.jsonl`` and ``log.csv``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["LOG_FIELDS", "EpochLogger"]

LOG_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "train_images",
    "val_ap",
    "val_auc",
    "val_acc",
    "val_real_acc",
    "val_fake_acc",
    "monitor",
    "best",
    "improved",
    "skipped",
    "seconds",
    "event",
)


class EpochLogger:
    """Appends one row per epoch to ``log.jsonl`` and ``log.csv``."""

    def __init__(self, out: Path) -> None:
        self.jsonl, self.csv = out / "log.jsonl", out / "log.csv"

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` to both files."""
        with self.jsonl.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
