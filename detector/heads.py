"""What the models' two halves hand each other, and the pieces the adapters' tails share.

:class:`TrunkMaps` (``forward_trunk``) -> :func:`token` per view -> :class:`Features`
(``forward_features``) -> :func:`classify` (``forward_head``): see :mod:`detector.model`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from detector.affm import AFFM
from detector.patches import PatchSelection

__all__ = ["Features", "TrunkMaps", "classify", "token"]


class TrunkMaps(NamedTuple):
    """:meth:`detector.model.GLFF.forward_trunk`'s output for ``B`` images and ``K`` patches.

    global_map: ``[B, C, h, w]`` trunk maps of the global view; local_maps: ``[B*K, C, h, w]``
    trunk maps of the patches, image by image (``h = w = 7`` for the whole trunk; with a
    ``split``, the maps after that trunk module); selection: the patches.
    """

    global_map: torch.Tensor
    local_maps: torch.Tensor
    selection: PatchSelection


class Features(NamedTuple):
    """``forward_features``'s output: tokens ``[B, K+1, D]``, one per view (the K patches, then
    the global view; GLFF: ``D = embed_dim``; global_only: ``K = 0`` and the pooled trunk
    output, ``D = C``) and the patch selection (``K = 0`` boxes for global_only)."""

    tokens: torch.Tensor
    selection: PatchSelection


def token(fmap: torch.Tensor, embed: nn.Linear | None) -> torch.Tensor:
    """``[N, C, h, w]`` trunk maps -> ``[N, D]`` tokens: average pool, then ``embed`` + ReLU
    (pooled features alone when ``embed`` is None: the global-only model)."""
    pooled = fmap.mean(dim=(2, 3))
    return pooled if embed is None else F.relu(embed(pooled))


def classify(
    tokens: torch.Tensor, head: nn.Linear, fusion: AFFM | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fusion + classifier: tokens ``[B, K+1, D]`` -> logits ``float [B]`` and the global
    token's attention ``[B, K+1]`` (without ``fusion``: the global token alone, attention 1)."""
    if fusion is None:
        logits = head(tokens[:, -1]).squeeze(1).float()
        return logits, logits.new_ones(logits.shape[0], 1)
    fused, attention = fusion(tokens)
    return head(fused).squeeze(1).float(), attention
