"""Split a GLFF model at a trunk module: a shared prefix and a small adaptable tail.

``prefix`` = the first ``split`` backbone trunk modules; ``tail`` = the remaining trunk modules,
the embedding, the fusion module and the head. An adapter is a modified copy of the tail; every
adapter and the base share the prefix and the patch boxes (chosen by the BASE model's patch
selection), so for ``B`` images and ``A`` adapters the prefix runs on ``7B`` views once and
each tail on the same ``7B`` feature maps. With boxes fixed by the base, the tail's output on
cached prefix features is exactly the adapted model's output, which makes few-shot training on
a feature cache exact (:mod:`detector.adapters.train`).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from detector.affm import AFFM
from detector.crops import crop_and_resize, normalize, prepare_pixels
from detector.errors import CheckpointError
from detector.model import GLFF, GlobalOnly
from detector.patches import PatchSelection, select_patches
from detector.psm import central_squares

__all__ = ["SharedViews", "Tail", "check_adaptable", "default_split", "shared_views"]


def check_adaptable(model: GLFF | GlobalOnly) -> GLFF:
    """The model, if it can carry adapters (GLFF, PSM patches, shared local backbone)."""
    cfg = model.config
    if not isinstance(model, GLFF) or cfg.patch_strategy != "psm" or cfg.local_backbone != "shared":
        raise CheckpointError(
            "adapters need a GLFF model with psm patches and a shared local backbone "
            f"(got arch={cfg.arch}, patches={cfg.patch_strategy}, local={cfg.local_backbone})"
        )
    return model


def default_split(model: GLFF) -> int:
    """The last trunk module starts the tail (MobileNetV2: the 1x1 conv to 1280; ResNet: layer4)."""
    return len(model.backbone.features) - 1


class Tail(nn.Module):
    """Trunk modules ``[split:]`` + embedding + fusion + head, on prefix feature maps."""

    def __init__(self, trunk: nn.Sequential, embed: nn.Linear, fusion: AFFM, head: nn.Linear):
        super().__init__()
        self.trunk = trunk
        self.embed = embed
        self.fusion = fusion
        self.head = head

    @classmethod
    def of(cls, model: GLFF, split: int, *, copy_weights: bool) -> Tail:
        """The model's own tail modules (shared) or a deep copy of them."""
        children = list(model.backbone.features.children())
        if not 0 < split < len(children):
            raise ValueError(f"split {split} outside 1..{len(children) - 1}")
        tail = cls(nn.Sequential(*children[split:]), model.embed, model.fusion, model.head)
        return copy.deepcopy(tail) if copy_weights else tail

    def token(self, fmap: torch.Tensor) -> torch.Tensor:
        """``[N, C, h, w]`` prefix maps -> ``[N, D]`` tokens."""
        return F.relu(self.embed(self.trunk(fmap).mean(dim=(2, 3))))

    def forward(
        self, global_feats: torch.Tensor, local_feats: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B]`` and attention ``[B, K+1]`` from prefix maps.

        ``global_feats [B, C, h, w]``, ``local_feats [B*K, C, h, w]`` (patches image by image).
        """
        b = global_feats.shape[0]
        views = torch.cat([local_feats, global_feats], dim=0)
        tokens = self.token(views)
        local = tokens[: local_feats.shape[0]].unflatten(0, (b, -1))
        fused, attention = self.fusion(torch.cat([local, tokens[-b:].unsqueeze(1)], dim=1))
        return self.head(fused).squeeze(1).float(), attention


class SharedViews(NamedTuple):
    """What the base and every adapter share for one batch."""

    global_feats: torch.Tensor  # [B, C, h, w] prefix maps of the global view
    local_feats: torch.Tensor  # [B*K, C, h, w] prefix maps of the K patches
    global_map: torch.Tensor  # [B, C', 7, 7] the base's last feature map (patch selection)
    selection: PatchSelection


def shared_views(model: GLFF, split: int, pixels: torch.Tensor, sizes: torch.Tensor) -> SharedViews:
    """Prefix features of the global view and the base-selected patches (as ``GLFF.forward``)."""
    cfg = model.config
    sizes = sizes.to(pixels.device)
    images = prepare_pixels(pixels, sizes)
    square = central_squares(sizes).unsqueeze(1)
    children = list(model.backbone.features.children())
    prefix, rest = nn.Sequential(*children[:split]), nn.Sequential(*children[split:])

    def run_prefix(crops: torch.Tensor) -> torch.Tensor:
        x = normalize(crops, cfg.mean, cfg.std)
        if model.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return prefix(x)

    global_feats = run_prefix(crop_and_resize(images, square, cfg.input_size)[:, 0])
    global_map = rest(global_feats)
    selection = select_patches(
        global_map.detach(),
        sizes,
        "psm",
        suppression=cfg.suppression,
        iou_threshold=cfg.iou_threshold,
    )
    crops = crop_and_resize(images, selection.boxes, cfg.input_size).flatten(0, 1)
    return SharedViews(global_feats, run_prefix(crops), global_map, selection)
