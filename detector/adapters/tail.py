"""Split a model at a trunk module: a shared prefix and a small adaptable tail.

``prefix`` = the first ``split`` backbone trunk modules; ``tail`` = the remaining trunk modules,
the embedding, the fusion module and the head (global_only: the remaining trunk modules and the
head). An adapter is a modified copy of the tail; every adapter and the base share the prefix
and the patch boxes (chosen by the BASE model's patch selection): the prefix maps are the
model's own :meth:`~detector.model.GLFF.forward_trunk` stopped at ``split`` (the views and the
input representation are the model's, so there is one forward path), and each tail runs on the
same ``7B`` maps (``B`` for global_only). With boxes fixed by the base, the tail's output on
cached prefix features is exactly the adapted model's output, which makes few-shot training on
a feature cache exact (:mod:`detector.adapters.train`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from detector.affm import AFFM
from detector.errors import CheckpointError
from detector.heads import classify, token
from detector.model import GLFF, GlobalOnly

__all__ = ["Tail", "check_adaptable", "default_split"]


def check_adaptable(model: GLFF | GlobalOnly) -> GLFF | GlobalOnly:
    """The model, if it can carry adapters: global_only, or GLFF with PSM patches and the
    shared local backbone (one trunk to split; the boxes a feature cache trains on are the ones
    serving picks). Any input representation (the tail runs on the model's own views)."""
    cfg = model.config
    if isinstance(model, GlobalOnly):
        return model
    if cfg.patch_strategy != "psm" or cfg.local_backbone != "shared":
        raise CheckpointError(
            "adapters need a global_only model or a GLFF model with psm patches and a shared "
            f"local backbone (got arch={cfg.arch}, patches={cfg.patch_strategy}, "
            f"local={cfg.local_backbone})"
        )
    return model


def default_split(model: GLFF | GlobalOnly) -> int:
    """The last trunk module starts the tail (MobileNetV2: the 1x1 conv to 1280; ResNet: layer4)."""
    return len(model.backbone.features) - 1


class Tail(nn.Module):
    """Trunk modules ``[split:]`` + embedding + fusion + head, on prefix feature maps
    (``embed`` and ``fusion`` are None for global_only: pooled trunk output -> head)."""

    def __init__(
        self,
        trunk: nn.Sequential,
        embed: nn.Linear | None,
        fusion: AFFM | None,
        head: nn.Linear,
    ):
        super().__init__()
        self.trunk = trunk
        self.embed = embed
        self.fusion = fusion
        self.head = head

    @classmethod
    def of(cls, model: GLFF | GlobalOnly, split: int, *, copy_weights: bool) -> Tail:
        """The model's own tail modules (shared) or a deep copy of them."""
        children = list(model.backbone.features.children())
        if not 0 < split < len(children):
            raise ValueError(f"split {split} outside 1..{len(children) - 1}")
        rest = nn.Sequential(*children[split:])
        if isinstance(model, GLFF):
            tail = cls(rest, model.embed, model.fusion, model.head)
        else:
            tail = cls(rest, None, None, model.head)
        return copy.deepcopy(tail) if copy_weights else tail

    def token(self, fmap: torch.Tensor) -> torch.Tensor:
        """``[N, C, h, w]`` prefix maps -> ``[N, D]`` tokens."""
        return token(self.trunk(fmap), self.embed)

    def classify(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, K+1, D]`` -> logits ``[B]`` and attention ``[B, K+1]`` (the model's
        :func:`~detector.model.classify` with this tail's fusion and head)."""
        return classify(tokens, self.head, self.fusion)

    def forward(
        self, global_feats: torch.Tensor, local_feats: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B]`` and attention ``[B, K+1]`` from prefix maps.

        ``global_feats [B, C, h, w]``, ``local_feats [B*K, C, h, w]`` (patches image by image;
        ``K = 0`` for global_only).
        """
        b = global_feats.shape[0]
        views = torch.cat([local_feats, global_feats], dim=0)
        tokens = self.token(views)
        local = tokens[: local_feats.shape[0]].unflatten(0, (b, local_feats.shape[0] // b))
        return self.classify(torch.cat([local, tokens[-b:].unsqueeze(1)], dim=1))
