"""Few-shot training of an adapter on cached prefix features.

The prefix (frozen) runs once per image (:func:`extract_features`); training then only runs the
tail (:class:`~detector.adapters.tail.Tail`). Methods:

- ``head``: only the 1-logit head trains (a linear probe on the fused vector);
- ``lora``: LoRA deltas on every tail convolution / linear / attention projection, plus the head;
- ``full``: every tail parameter (trunk modules after the split, embedding, fusion, head).

Batch norm stays in eval mode (its statistics are the base's; a few dozen images cannot
re-estimate them). When the tail's trunk is one ``1x1 conv -> BN -> activation`` block
(MobileNetV2's last module), ``head`` and ``lora`` use a fast path: ``W0 x`` is computed once
per image and a LoRA delta costs ``B (A x)`` per step; the results are the same.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from detector.adapters.lora import LoRADelta, add_lora, lora_tensors
from detector.adapters.tail import Tail
from detector.batching import collate_images, group_by_size
from detector.decode import ImageLimits, decode_image
from detector.heads import token
from detector.model import GLFF, GlobalOnly

__all__ = ["METHODS", "AdaptConfig", "FeatureSet", "TrainedAdapter", "extract_features", "train"]

METHODS = ("head", "lora", "full")


@dataclass(frozen=True)
class AdaptConfig:
    """How one adapter is trained (stored in the adapter's metadata)."""

    method: str = "lora"
    rank: int = 8
    alpha: float = 0.0  # 0: 2 * rank (the paper's alpha / r = 2)
    steps: int = 60
    batch_size: int = 16
    lr: float = 0.0  # 0: 1e-2 for head, 1e-3 for lora, 1e-4 for full
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} not in {METHODS}")
        if self.rank < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError("rank, steps and batch_size must be at least 1")

    @property
    def effective_alpha(self) -> float:
        return self.alpha or 2.0 * self.rank

    @property
    def effective_lr(self) -> float:
        return self.lr or {"head": 1e-2, "lora": 1e-3, "full": 1e-4}[self.method]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(alpha=self.effective_alpha, lr=self.effective_lr)
        if self.method != "lora":
            data.pop("rank")
            data.pop("alpha")
        return data


@dataclass
class FeatureSet:
    """Prefix features of images: ``feats [N, K+1, C, h, w]`` (K patches, then the global view);
    ``pre [N, K+1, C', h, w]`` the fast path's ``W0 x`` (or None)."""

    feats: torch.Tensor
    pre: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    def subset(self, index: Sequence[int] | torch.Tensor) -> FeatureSet:
        idx = torch.as_tensor(index, dtype=torch.long)
        return FeatureSet(self.feats[idx], None if self.pre is None else self.pre[idx])


def _fast_block(tail: Tail) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.Module] | None:
    """The (conv, bn, act) of a tail whose trunk is one 1x1 conv block, else None."""
    if len(tail.trunk) != 1:
        return None
    block = list(tail.trunk[0].children())
    if len(block) != 3:
        return None
    conv, bn, act = block
    if (
        isinstance(conv, nn.Conv2d)
        and isinstance(bn, nn.BatchNorm2d)
        and conv.kernel_size == (1, 1)
        and conv.stride == (1, 1)
        and conv.groups == 1
        and conv.bias is None
    ):
        return conv, bn, act
    return None


@torch.no_grad()
def precompute(tail: Tail, feats: torch.Tensor) -> torch.Tensor | None:
    """``W0 x`` for the fast path (None when the tail has no single 1x1 conv block)."""
    block = _fast_block(tail)
    if block is None:
        return None
    conv = block[0]
    out = [F.conv2d(chunk.flatten(0, 1).float(), conv.weight) for chunk in feats.split(64)]
    return torch.cat(out).unflatten(0, (feats.shape[0], feats.shape[1])).half()


def tail_logits(tail: Tail, data: FeatureSet, use_pre: bool) -> torch.Tensor:
    """Logits of the tail on cached features (fast path when ``use_pre``)."""
    feats = data.feats.float()
    n, v = feats.shape[0], feats.shape[1]
    block = _fast_block(tail)
    if use_pre and block is not None and data.pre is not None:
        conv, bn, act = block
        z = data.pre.float().flatten(0, 1)
        if parametrize.is_parametrized(conv, "weight"):
            delta = conv.parametrizations.weight[0]  # type: ignore[union-attr,index]
            assert isinstance(delta, LoRADelta)
            x = feats.flatten(0, 1).flatten(2)  # [NV, C, hw]
            z = z + (delta.lora_B @ (delta.lora_A @ x) * delta.scale).view_as(z)
        tokens = token(act(bn(z)), tail.embed).unflatten(0, (n, v))
    else:
        tokens = tail.token(feats.flatten(0, 1)).unflatten(0, (n, v))
    return tail.classify(tokens)[0]


@torch.no_grad()
def score(tail: Tail, data: FeatureSet, batch: int = 64, use_pre: bool = True) -> torch.Tensor:
    """Logits of every cached image (eval mode)."""
    tail.eval()
    outs = [
        tail_logits(tail, data.subset(range(i, min(i + batch, len(data)))), use_pre)
        for i in range(0, len(data), batch)
    ]
    return torch.cat(outs) if outs else torch.zeros(0)


@dataclass
class TrainedAdapter:
    """A trained tail (LoRA deltas still separate, for the fast path; an adapter file loaded
    with :func:`~detector.adapters.file.load_adapter` has them merged) and the tensors to save.
    ``fast``: whether :func:`score` may use the cached ``W0 x`` (head and lora)."""

    tail: Tail
    tensors: dict[str, torch.Tensor]
    config: AdaptConfig
    final_loss: float

    @property
    def fast(self) -> bool:
        return self.config.method != "full"


def train(
    base_tail: Tail,
    data: FeatureSet,
    labels: torch.Tensor,
    cfg: AdaptConfig,
    progress: bool = False,
) -> TrainedAdapter:
    """Train an adapter of ``base_tail`` (not modified) on cached features; seeded."""
    if len(data) != labels.shape[0] or len(data) == 0:
        raise ValueError("features and labels must be non-empty and of equal length")
    torch.manual_seed(cfg.seed)
    tail = copy.deepcopy(base_tail).eval()
    tail.requires_grad_(False)
    use_pre = cfg.method != "full" and data.pre is not None
    params: list[nn.Parameter]
    if cfg.method == "head":
        params = list(tail.head.parameters())
    elif cfg.method == "lora":
        params = add_lora(tail, cfg.rank, cfg.effective_alpha) + list(tail.head.parameters())
    else:
        params = list(tail.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=cfg.effective_lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    y = labels.float()
    order = torch.randperm(len(data), generator=generator)
    cursor, loss_value = 0, math.nan
    bar = tqdm(range(cfg.steps), desc=f"adapt {cfg.method}", disable=not progress, unit="step")
    for _ in bar:
        if cursor + cfg.batch_size > len(order):
            order, cursor = torch.randperm(len(data), generator=generator), 0
        idx = order[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        loss = F.binary_cross_entropy_with_logits(
            tail_logits(tail, data.subset(idx), use_pre), y[idx]
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        bar.set_postfix(loss=f"{loss_value:.4f}")
    tail.requires_grad_(False)
    tensors: dict[str, torch.Tensor]
    if cfg.method == "head":
        tensors = {f"head.{k}": v.clone() for k, v in tail.head.state_dict().items()}
    elif cfg.method == "lora":
        tensors = lora_tensors(tail)
        tensors.update({f"head.{k}": v.clone() for k, v in tail.head.state_dict().items()})
    else:
        tensors = {k: v.clone() for k, v in tail.state_dict().items()}
    return TrainedAdapter(tail.eval(), tensors, cfg, loss_value)


@torch.no_grad()
def extract_features(
    model: GLFF | GlobalOnly,
    split: int,
    paths: Sequence[Path],
    *,
    batch: int = 8,
    limits: ImageLimits | None = None,
    progress: bool = False,
) -> tuple[FeatureSet, list[int]]:
    """Prefix features of images (the model's ``forward_trunk`` stopped at ``split``: base-selected
    patches, then the global view), fp16.

    Returns the features of the images that decoded and their indices into ``paths`` (an image
    that cannot be decoded is skipped).
    """
    model.eval()
    decoded, kept = [], []
    for i, path in enumerate(paths):
        try:
            decoded.append(decode_image(Path(path), limits or ImageLimits()))
            kept.append(i)
        except Exception:
            continue
    rows: list[torch.Tensor | None] = [None] * len(decoded)
    sizes = [(d.height, d.width) for d in decoded]
    groups = list(group_by_size(sizes, batch, 16_000_000))
    for group in tqdm(groups, desc="features", disable=not progress, unit="batch"):
        pixels, hw = collate_images([decoded[i].pixels for i in group])
        maps = model.forward_trunk(pixels, hw, split=split)
        local = maps.local_maps.unflatten(0, (len(group), maps.selection.boxes.shape[1]))
        both = torch.cat([local, maps.global_map.unsqueeze(1)], dim=1).half()
        for row, index in enumerate(group):
            rows[index] = both[row]
    feats = torch.stack([r for r in rows if r is not None])
    return FeatureSet(feats), kept
