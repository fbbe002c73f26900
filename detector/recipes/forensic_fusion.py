"""The forensic recipe's fusion fit on cached views, and its false-positive rates.

The two trunks stay frozen: only GLFF's embeddings, attention fusion (AFFM) and head are fitted,
on the pooled global feature and the forensic branch's pooled crop features
(:mod:`detector.recipes.forensic_views`), with the weight decay chosen by validation AP.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from detector.model import GLFF, ModelConfig
from detector.recipes.forensic_views import Row, Views
from detector.training.lofo import PEOPLE
from detector.training.metrics import average_precision

__all__ = [
    "STRENGTHS",
    "Fusion",
    "false_positive_rates",
    "fit_fusion",
    "fusion_inputs",
    "view_kind",
]

STRENGTHS = (1e-4, 1e-3, 1e-2)
"""Weight decay candidates (x 100 in AdamW) of the fusion fit."""
FUSION_EPOCHS = 60
FUSION_BATCH = 128
FUSION_LR = 1e-3

Labels = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]
Part = tuple[torch.Tensor, torch.Tensor, Labels]
"""Global features ``[N, 1280]``, crop features ``[N, 6, C]`` and labels ``[N]``."""


class Fusion(nn.Module):
    """GLFF's trained part on cached features: embeddings, AFFM and head of a GLFF."""

    def __init__(self, glff: GLFF) -> None:
        super().__init__()
        assert glff.local_embed is not None
        self.embed, self.local_embed = glff.embed, glff.local_embed
        self.fusion, self.head = glff.fusion, glff.head

    def forward(self, g: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """Global ``[N, 1280]`` and crop features ``[N, 6, C]`` -> logits ``[N]``."""
        tokens = torch.cat([F.relu(self.local_embed(local)), F.relu(self.embed(g))[:, None]], 1)
        fused, _ = self.fusion(tokens)
        return self.head(fused).squeeze(1)


def fusion_inputs(
    keys: Sequence[str], views: Views, feats: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fusion's inputs for ``keys``: global features and the crops' pooled features."""
    g = torch.stack([views[k]["g"].float() for k in keys])
    local = torch.stack([feats[k][:, :-1] for k in keys])
    return g, local


def fit_fusion(
    train: Part, val: Part, config: ModelConfig, epochs: int = FUSION_EPOCHS
) -> tuple[Fusion, Scores, float]:
    """Fusion with the best validation AP over :data:`STRENGTHS` -> (model, val scores, wd)."""
    (gt, lt, yt), (gv, lv, yv) = train, val
    best: tuple[float, Fusion | None, Scores, float] = (-1.0, None, np.zeros(0, np.float32), 0.0)
    for wd in STRENGTHS:
        torch.manual_seed(0)
        fusion = Fusion(GLFF(config))
        opt = torch.optim.AdamW(fusion.parameters(), lr=FUSION_LR, weight_decay=wd * 100)
        target = torch.from_numpy(yt).float()
        for _ in range(epochs):
            order = torch.randperm(len(yt))
            for i in range(0, len(order), FUSION_BATCH):
                idx = order[i : i + FUSION_BATCH]
                loss = F.binary_cross_entropy_with_logits(fusion(gt[idx], lt[idx]), target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            sv = torch.sigmoid(fusion.eval()(gv, lv)).numpy()
        ap = average_precision(yv, sv)
        if ap > best[0]:
            best = (ap, fusion, sv, wd)
    assert best[1] is not None
    return best[1], best[2], best[3]


def view_kind(key: str, row: Row) -> str:
    """``fake``, ``crop`` (an upscaled crop of a people photo), ``people`` or ``photo``."""
    if row["label"] == "1":
        return "fake"
    if key.startswith("crop|"):
        return "crop"
    return "people" if row["family"] == PEOPLE else "photo"


def false_positive_rates(
    kinds: Sequence[str], scores: npt.ArrayLike, threshold: float
) -> dict[str, float | None]:
    """Shares flagged (``score >= threshold``) of the real views: all real photos, people,
    upscaled crops and other photos (None where there is none)."""
    kind = np.asarray(kinds)
    flagged = np.asarray(scores) >= threshold
    masks = {
        "fpr_real": (kind == "photo") | (kind == "people"),
        "fpr_people": kind == "people",
        "fpr_crops": kind == "crop",
        "fpr_other": kind == "photo",
    }
    return {n: float(flagged[m].mean()) if m.any() else None for n, m in masks.items()}
