"""The zero-shot artifact: filters, description parameters and the real-photo density.

An ordinary safetensors file. Tensors: ``filters`` ``[F, k, k]`` (the constrained weights, not
the free parameters) and ``density.*`` (:meth:`Density.tensors`). Metadata (all strings; JSON
where structured): ``format`` (:data:`FORMAT`), ``version``, ``params`` (:class:`DescribeParams`),
``nll_mean``/``nll_std``, ``threshold`` (on the z-score), ``sources`` (real photos per source),
``counts`` (descriptions fitted, held out...), ``recipe`` (how it was made).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from detector.zeroshot.density import Density
from detector.zeroshot.describe import DescribeParams, describe_boxes, describe_image

__all__ = ["FORMAT", "ZeroShotModel", "load_zeroshot", "save_zeroshot"]

FORMAT = "synthscan-zeroshot-fsd/1"


@dataclass
class ZeroShotModel:
    """Everything needed to describe and score an image (pure torch at inference)."""

    filters: torch.Tensor
    params: DescribeParams
    density: Density
    threshold: float = 2.0
    version: str = "0.0.0"
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self, image: np.ndarray | torch.Tensor, device: str = "cpu") -> torch.Tensor:
        """``float32 [D]`` description of a ``uint8`` image (see :func:`describe_image`)."""
        return describe_image(image, self.filters, self.params, device)

    def describe_boxes(
        self,
        image: np.ndarray | torch.Tensor,
        boxes: torch.Tensor | np.ndarray,
        device: str = "cpu",
    ) -> torch.Tensor:
        """``float32 [K, D]`` descriptions of boxes ``[K, 4]`` (pixels, x0 y0 x1 y1)."""
        return describe_boxes(image, boxes, self.filters, self.params, device)

    def score_descriptions(self, descriptions: torch.Tensor) -> torch.Tensor:
        """``[N, D]`` -> ``float64 [N]`` z-scores (higher = more synthetic)."""
        return self.density.score(descriptions)

    def score(self, image: np.ndarray | torch.Tensor, device: str = "cpu") -> float:
        """The whole image's z-score."""
        return float(self.score_descriptions(self.describe(image, device)[None])[0])

    def score_boxes(
        self,
        image: np.ndarray | torch.Tensor,
        boxes: torch.Tensor | np.ndarray,
        device: str = "cpu",
    ) -> torch.Tensor:
        """``float64 [K]`` z-scores of boxes (a box is scored by the whole-image density)."""
        return self.score_descriptions(self.describe_boxes(image, boxes, device))


def save_zeroshot(path: str | Path, model: ZeroShotModel) -> int:
    """Write the artifact; returns its size in bytes."""
    tensors = {"filters": model.filters.detach().float().contiguous().cpu()}
    tensors.update({k: v.cpu() for k, v in model.density.tensors().items()})
    metadata = {
        "format": FORMAT,
        "version": model.version,
        "params": json.dumps(model.params.to_dict()),
        "nll_mean": repr(model.density.nll_mean),
        "nll_std": repr(model.density.nll_std),
        "threshold": repr(model.threshold),
        "info": json.dumps(model.info, sort_keys=True),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path.stat().st_size


def load_zeroshot(path: str | Path) -> ZeroShotModel:
    """Read an artifact written by :func:`save_zeroshot`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a zero-shot artifact (format {meta.get('format')!r})")
    tensors = load_file(str(path))
    density = Density.from_tensors(tensors, float(meta["nll_mean"]), float(meta["nll_std"]))
    return ZeroShotModel(
        filters=tensors["filters"],
        params=DescribeParams(**json.loads(meta["params"])),
        density=density,
        threshold=float(meta["threshold"]),
        version=meta["version"],
        info=json.loads(meta["info"]),
    )
