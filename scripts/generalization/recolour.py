"""Apply ``synth_fakes.match_colour`` to fakes written without it (in place; study use)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detector.training.datasets import load_rgb, to_tensor
from detector.training.synth_fakes import match_colour


def main() -> None:
    """``python -m scripts.generalization.recolour MANIFEST`` (synth-fakes' manifest.csv)."""
    manifest = Path(sys.argv[1])
    for row in csv.DictReader(manifest.open()):
        path = manifest.parent / row["path"]
        fake = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
        real = to_tensor(load_rgb(Path(row["real_path"])))
        out = match_colour(fake.contiguous(), real)
        Image.fromarray(out.permute(1, 2, 0).numpy()).save(path)
    print("recoloured", manifest)


if __name__ == "__main__":
    main()
