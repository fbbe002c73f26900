"""The fitting recipe: real photos only -> filters -> descriptions -> density -> artifact.

1. Real rows (label 0; a manifest's ``train`` split when it has splits) are split per source
   into a fitting part and a held-out part (every ``holdout_every``-th photo).
2. Each photo gets ``variants`` processed copies (:func:`upload_variant`, seeded per photo).
3. The filters start from :func:`classical_filters` and take ``filter_steps`` Adam steps
   minimising the residual energy of random grayscale crops of the fitting photos and copies.
4. Every photo and copy is described (cached per image in ``cache``, keyed by the filters and
   parameters, so an interrupted fit resumes where it stopped).
5. The density is fitted on the fitting descriptions; the z-score is calibrated on the held-out
   ones (fitting photos look more typical than new ones), and the threshold is the
   ``threshold_quantile`` of the held-out z-scores.

``python -m detector zeroshot fit MANIFEST --out ART`` runs it (:mod:`.cli`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.zeroshot.artifact import ZeroShotModel
from detector.zeroshot.data import Row, load_rgb, read_rows, split_holdout, upload_variant
from detector.zeroshot.density import fit_density
from detector.zeroshot.describe import DescribeParams, describe_image, to_gray
from detector.zeroshot.filters import FilterBank, train_filters

__all__ = ["DescriptorCache", "RecipeConfig", "fit_recipe", "real_rows"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RecipeConfig:
    """Every knob of the recipe (stored in the artifact's ``info.recipe``)."""

    params: DescribeParams = field(default_factory=DescribeParams)
    variants: int = 2
    holdout_every: int = 5
    filter_steps: int = 300
    filter_lr: float = 1e-3
    crop: int = 96
    crop_batch: int = 8
    components: int = 4
    pca_dims: int = 64
    reg_covar: float = 1e-2
    threshold_quantile: float = 0.95
    max_images: int = 0
    seed: int = 0
    version: str = "0.1.0"

    def to_dict(self) -> dict[str, Any]:
        """Plain values."""
        out = asdict(self)
        out["params"] = self.params.to_dict()
        return out


def real_rows(src: str | Path, max_images: int = 0) -> list[Row]:
    """Real photos of a manifest (its ``train`` split if it has splits) or a folder."""
    rows = [r for r in read_rows(src) if r.label == 0]
    if any(r.split for r in rows):
        rows = [r for r in rows if r.split == "train"]
    if max_images > 0:
        rows = rows[:: max(1, len(rows) // max_images)][:max_images]
    return rows


def _variant(row: Row, v: int, seed: int) -> np.ndarray:
    """``uint8 [H, W, 3]``: the photo (``v == 0``) or its ``v``-th processed copy."""
    img = load_rgb(row.path)
    if v > 0:
        digest = hashlib.sha256(f"{row.path.name}:{v}:{seed}".encode()).digest()
        img = upload_variant(img, np.random.default_rng(int.from_bytes(digest[:8], "little")))
    return np.asarray(img)


class DescriptorCache:
    """Descriptions on disk, one ``.npy`` per (photo, variant), keyed by filters and params."""

    def __init__(self, folder: Path | None, filters: torch.Tensor, params: DescribeParams) -> None:
        key = hashlib.sha256(filters.detach().float().cpu().numpy().tobytes())
        key.update(json.dumps(params.to_dict(), sort_keys=True).encode())
        self.folder = None if folder is None else Path(folder) / key.hexdigest()[:16]
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.filters, self.params = filters.detach().float().cpu(), params

    def get(self, row: Row, v: int, seed: int, device: str = "cpu") -> np.ndarray:
        """The description of ``row``'s variant ``v`` (computed once)."""
        name = hashlib.sha256(f"{row.path.resolve()}:{v}:{seed}".encode()).hexdigest()[:24]
        file = None if self.folder is None else self.folder / f"{name}.npy"
        if file is not None and file.exists():
            return np.load(file)
        d = describe_image(_variant(row, v, seed), self.filters, self.params, device).numpy()
        if file is not None:
            np.save(file, d)
        return d


def _crop_sampler(rows: list[Row], cfg: RecipeConfig) -> Callable[[torch.Generator], torch.Tensor]:
    """Draws ``crop_batch`` random grayscale crops of the fitting photos and their copies."""
    images = [
        to_gray(_variant(r, v, cfg.seed)) for r in rows for v in range(min(2, 1 + cfg.variants))
    ]
    images = [g for g in images if min(g.shape) >= cfg.crop]

    def draw(gen: torch.Generator) -> torch.Tensor:
        out = []
        for i in torch.randint(0, len(images), (cfg.crop_batch,), generator=gen).tolist():
            g = images[i]
            y = int(torch.randint(0, g.shape[0] - cfg.crop + 1, (1,), generator=gen))
            x = int(torch.randint(0, g.shape[1] - cfg.crop + 1, (1,), generator=gen))
            out.append(g[y : y + cfg.crop, x : x + cfg.crop])
        return torch.stack(out).unsqueeze(1)

    return draw


def _describe_all(
    cache: DescriptorCache,
    rows: list[Row],
    cfg: RecipeConfig,
    stage: str,
    progress: Progress | None,
) -> np.ndarray:
    items = [(r, v) for r in rows for v in range(1 + cfg.variants)]
    out = []
    for i, (row, v) in enumerate(items):
        out.append(cache.get(row, v, cfg.seed))
        if progress is not None:
            progress(stage, i + 1, len(items))
    return np.stack(out)


def _loss_summary(losses: list[float], k: int = 20) -> dict[str, float]:
    """Mean training loss (residual energy x 1e3) of the first and last ``k`` steps."""
    if not losses:
        return {}
    return {f"first{k}": float(np.mean(losses[:k])), f"last{k}": float(np.mean(losses[-k:]))}


def fit_recipe(
    src: str | Path,
    cfg: RecipeConfig,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> ZeroShotModel:
    """Fit the zero-shot model on the real photos of ``src`` (manifest CSV or folder)."""
    torch.manual_seed(cfg.seed)
    fit_rows, held_rows = split_holdout(real_rows(src, cfg.max_images), cfg.holdout_every)
    if len(fit_rows) < 4:
        raise ValueError(f"{src}: {len(fit_rows)} real photos to fit on; need at least 4")
    bank = FilterBank()
    losses: list[float] = []
    if cfg.filter_steps > 0:
        step_cb = (
            None
            if progress is None
            else (lambda s, _: progress("filters", s + 1, cfg.filter_steps))
        )
        losses = train_filters(
            bank, _crop_sampler(fit_rows, cfg), cfg.filter_steps, cfg.filter_lr, cfg.seed, step_cb
        )
    filters = bank.weights().detach()
    cache = DescriptorCache(cache_dir, filters, cfg.params)
    x_fit = _describe_all(cache, fit_rows, cfg, "describe-fit", progress)
    x_held = _describe_all(cache, held_rows, cfg, "describe-held", progress) if held_rows else x_fit
    density = fit_density(x_fit, cfg.components, cfg.pca_dims, cfg.reg_covar, cfg.seed, x_held)
    held_scores = density.score(torch.from_numpy(x_held)).numpy()
    threshold = float(np.quantile(held_scores, cfg.threshold_quantile))
    info = {
        "sources": dict(Counter(r.source for r in fit_rows + held_rows)),
        "counts": {
            "fit_photos": len(fit_rows),
            "held_photos": len(held_rows),
            "fit_descriptions": len(x_fit),
            "held_descriptions": len(x_held),
        },
        "filter_loss": _loss_summary(losses),
        "recipe": cfg.to_dict(),
        "input": str(src),
    }
    return ZeroShotModel(filters, cfg.params, density, threshold, cfg.version, info)
