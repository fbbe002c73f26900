"""The GLFF model (global + local features fused by attention) and the global-only baseline.

``GLFF.forward(pixels, sizes)`` takes a zero-padded ``uint8 [B, 3, H, W]`` batch of images at
their ORIGINAL resolution (see :func:`detector.batching.collate_images`) and does on the
model's device:

1. global view: central square -> 224 (short-side resize + centre crop), one ``roi_align``;
2. backbone -> 7x7 feature map ``F`` -> average pool -> ``Linear(C, 128)`` + ReLU;
3. patch selection on ``F`` (no gradient) -> 6 boxes in original pixels;
4. all ``6B`` patches cropped and resized to 224 in one ``roi_align`` call -> backbone (shared
   by default) -> ``Linear(C, 128)`` + ReLU;
5. AFFM over 7 tokens (3 large, 3 small, global) -> global token -> ``Linear(128, 1)``.

On the CPU the views get ``roi_align``'s samples from the ``uint8`` pixels directly
(:func:`detector.crops.resample_views`; ``reference_crops = True`` restores the float batch and
``roi_align``, the engine before that change).

For ``random`` and ``rsz448`` the boxes do not depend on ``F``, so the global view and the
patches are cropped in one call and run through a shared backbone as one batch.

One forward path, in timm's split: ``forward = forward_head(forward_features(...))``;
``forward_features`` (steps 1-4: views, input representation, trunks, patch selection, tokens)
is ``forward_trunk`` (the trunk maps; with ``split``, stopped after that trunk module, which
the adapters in :mod:`detector.adapters` build on) followed by the embedding;
``forward_head`` is step 5 (fusion + classifier, :func:`detector.heads.classify`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import nn

from detector.affm import AFFM
from detector.backbones import BACKBONES, Backbone, BackboneName, build_backbone
from detector.crops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_and_resize,
    prepare_pixels,
    resample_views,
    roi_crops,
)
from detector.forensic import ForensicNet, native_crops
from detector.heads import Features, TrunkMaps, classify, token
from detector.patches import (
    PatchSelection,
    PatchStrategy,
    num_patches,
    select_patches,
    with_activations,
)
from detector.psm import Suppression, central_squares
from detector.representation import (
    InputRepr,
    adapt_first_conv,
    input_affine,
    normalize_input,
    represent,
)

__all__ = [
    "ARCH_ALIASES",
    "GLFF",
    "Arch",
    "Features",
    "GLFFOutput",
    "GlobalOnly",
    "ModelConfig",
    "TrunkMaps",
    "build_model",
    "canonical_arch",
    "count_parameters",
]

Arch = Literal["glff", "global_only"]
"""``glff``: the paper's model; ``global_only``: its baseline (the global view alone)."""
ARCH_ALIASES: dict[str, Arch] = {"cnn_aug": "global_only", "global": "global_only"}
"""Old names of the baseline, still read: ``cnn_aug`` (older checkpoints, verdict stamps and
``init-checkpoint --arch``) and ``global`` (older ``train --arch`` and saved training configs)."""
LocalBackbone = Literal["shared", "separate", "forensic"]
"""``shared``: the patches go through the global trunk; ``separate``: a second trunk of the same
kind; ``forensic``: :class:`detector.forensic.ForensicNet` on native crops (no resampling)."""
PatchChoice = PatchStrategy | Literal["none"]  # "none": the global-only model


_ARCH_NAMES: dict[str, Arch] = {**{a: a for a in get_args(Arch)}, **ARCH_ALIASES}


def canonical_arch(name: str) -> Arch:
    """``name`` or an old alias of it -> the architecture's one name; ValueError if unknown."""
    arch = _ARCH_NAMES.get(name)
    if arch is None:
        raise ValueError(f"arch {name!r} not in {sorted(_ARCH_NAMES)}")
    return arch


def _check(problems: list[str], field: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        problems.append(f"{field} {value!r} not in {list(allowed)}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in checkpoint metadata.

    Fields with a fixed set of values are ``Literal`` types and checked at construction, so a
    checkpoint naming an unknown backbone (say) is refused with the field and the choices.
    ``arch`` also takes the old names in :data:`ARCH_ALIASES` and stores the one name.
    """

    arch: Arch = "glff"
    backbone: BackboneName = "resnet50"
    patch_strategy: PatchChoice = "psm"  # "none" iff arch == "global_only"
    local_backbone: LocalBackbone = "shared"
    suppression: Suppression = "grid"
    iou_threshold: float = 0.25
    embed_dim: int = 128
    heads: int = 4
    depth: int = 3
    ff_dim: int = 128
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_repr: InputRepr = "rgb"  # "npr": upsampling residual; "both": 6 channels

    def __post_init__(self) -> None:
        problems: list[str] = []
        try:
            object.__setattr__(self, "arch", canonical_arch(self.arch))
        except ValueError as exc:
            problems.append(str(exc))
        _check(problems, "backbone", self.backbone, tuple(sorted(BACKBONES)))  # + registered
        global_only = self.arch == "global_only"
        strategies = ("none",) if global_only else get_args(PatchStrategy)
        _check(problems, "patch_strategy", self.patch_strategy, strategies)
        _check(problems, "local_backbone", self.local_backbone, get_args(LocalBackbone))
        _check(problems, "suppression", self.suppression, get_args(Suppression))
        _check(problems, "input_repr", self.input_repr, get_args(InputRepr))
        if self.input_size != 224:
            problems.append("input_size must be 224 (the PSM assumes a 7x7 feature map)")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


class GLFFOutput(NamedTuple):
    """Model outputs. ``K`` patches: 6 (psm, random), 5 (rsz448), 0 (global_only).

    logits: ``float [B]`` (label 1 = synthetic); boxes: ``float [B, K, 4]`` original pixels;
    windows: ``int64 [B, K]``; activations: ``float [B, K]``; attention: ``float [B, K + 1]``
    the global token's last-layer attention over patch tokens then itself.
    """

    logits: torch.Tensor
    boxes: torch.Tensor
    windows: torch.Tensor
    activations: torch.Tensor
    attention: torch.Tensor


def _cropper(
    pixels: torch.Tensor, sizes: torch.Tensor, cfg: ModelConfig, reference: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``boxes [B, K, 4] -> normalised backbone inputs [B, K, C, S, S]`` for this batch.

    On the CPU the views are resampled straight from the ``uint8`` pixels and normalised in
    place (:func:`detector.crops.resample_views`); elsewhere, or with ``reference``, the padded
    batch is converted to float once and cropped by ``roi_align`` (``reference``: always, as the
    engine did before the CPU fast path).
    """
    planes = represent(pixels, cfg.input_repr)
    size = cfg.input_size
    if planes.device.type == "cpu" and not reference:
        scale, shift = input_affine(cfg.input_repr, cfg.mean, cfg.std)
        return lambda boxes: resample_views(planes, sizes, boxes, size, scale, shift)
    images = prepare_pixels(planes, sizes)
    crop = roi_crops if reference else crop_and_resize
    return lambda boxes: normalize_input(
        crop(images, boxes, size), cfg.input_repr, cfg.mean, cfg.std
    )


class GLFF(nn.Module):
    """Global and local feature fusion detector (see module docstring)."""

    def __init__(self, config: ModelConfig, backbone_weights: str | Path | None = None) -> None:
        super().__init__()
        if config.arch != "glff":
            raise ValueError("GLFF needs arch='glff'")
        self.config = config
        self.channels_last = False
        self.reference_crops = False  # True: crops as before the CPU fast path (benchmarks)
        self.generator: torch.Generator | None = None
        self.backbone = build_backbone(config.backbone, backbone_weights)
        adapt_first_conv(self.backbone, config.input_repr)
        channels = self.backbone.out_channels
        self.embed = nn.Linear(channels, config.embed_dim)
        self.local_backbone: Backbone | None = None
        self.local_embed: nn.Linear | None = None
        self.forensic: ForensicNet | None = None
        if config.local_backbone == "separate":
            self.local_backbone = build_backbone(config.backbone, backbone_weights)
            adapt_first_conv(self.local_backbone, config.input_repr)
            self.local_embed = nn.Linear(channels, config.embed_dim)
        elif config.local_backbone == "forensic":
            self.forensic = ForensicNet()
            self.local_embed = nn.Linear(self.forensic.out_channels, config.embed_dim)
        self.fusion = AFFM(config.embed_dim, config.heads, config.ff_dim, config.depth)
        self.head = nn.Linear(config.embed_dim, 1)

    def _features(self, crops: torch.Tensor, local: bool) -> torch.Tensor:
        """``[N, 3|6, S, S]`` crops of the represented image -> ``[N, C, 7, 7]`` feature maps."""
        x = normalize_input(crops, self.config.input_repr, self.config.mean, self.config.std)
        return self._trunk(x, local)

    def _trunk(self, x: torch.Tensor, local: bool, stop: int | None = None) -> torch.Tensor:
        """Normalised ``[N, 3|6, S, S]`` backbone inputs -> ``[N, C, 7, 7]`` feature maps (with
        ``stop``: the maps after the shared trunk's first ``stop`` modules)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if stop is not None:
            return self.backbone.features[:stop](x)
        net = self.local_backbone if local and self.local_backbone is not None else self.backbone
        return net(x)

    def _embed(self, fmap: torch.Tensor, local: bool) -> torch.Tensor:
        layer = self.local_embed if local and self.local_embed is not None else self.embed
        return token(fmap, layer)

    def _local_maps(
        self,
        pixels: torch.Tensor,
        sizes: torch.Tensor,
        views: Callable[[torch.Tensor], torch.Tensor],
        boxes: torch.Tensor,
        split: int | None = None,
    ) -> torch.Tensor:
        """Patches ``boxes [B, K, 4]`` -> local feature maps ``[B * K, C, h, w]``."""
        if self.forensic is not None:
            return self.forensic(native_crops(pixels, sizes, boxes).flatten(0, 1))
        return self._trunk(views(boxes).flatten(0, 1), local=True, stop=split)

    def forward_trunk(
        self, pixels: torch.Tensor, sizes: torch.Tensor, *, split: int | None = None
    ) -> TrunkMaps:
        """Views + representation + trunk(s): the first half of :meth:`forward_features`.

        ``pixels uint8 [B, 3, H, W]`` (zero-padded), ``sizes int64 [B, 2]``. With ``split``, the
        views stop after the first ``split`` trunk modules (adapters run the rest, see
        :mod:`detector.adapters.tail`); the patches are still selected on the whole trunk's map.
        """
        cfg = self.config
        if split is not None and (self.local_backbone is not None or self.forensic is not None):
            raise ValueError("split needs the shared local backbone")
        sizes = sizes.to(pixels.device)
        views = _cropper(pixels, sizes, cfg, self.reference_crops)
        square = central_squares(sizes).unsqueeze(1)  # [B, 1, 4]
        b, s, k = pixels.shape[0], cfg.input_size, num_patches(cfg.patch_strategy)
        if cfg.patch_strategy == "psm":
            global_map = self._trunk(views(square)[:, 0], local=False, stop=split)
            full_map = self._trunk_rest(global_map, split)
            selection = select_patches(
                full_map.detach(),
                sizes,
                "psm",
                suppression=cfg.suppression,
                iou_threshold=cfg.iou_threshold,
            )
            local_map = self._local_maps(pixels, sizes, views, selection.boxes, split)
        elif self.forensic is not None:
            selection = select_patches(
                None, sizes, cfg.patch_strategy, grid=(s // 32, s // 32), generator=self.generator
            )
            global_map = self._trunk(views(square)[:, 0], local=False)
            local_map = self._local_maps(pixels, sizes, views, selection.boxes)
            selection = with_activations(selection, global_map.detach(), sizes)
        else:  # the boxes do not depend on the features: one crop call for all 7 views
            selection = select_patches(
                None, sizes, cfg.patch_strategy, grid=(s // 32, s // 32), generator=self.generator
            )
            crops = views(torch.cat([selection.boxes, square], dim=1))
            if self.local_backbone is None:
                maps = self._trunk(crops.flatten(0, 1), local=False, stop=split)
                maps = maps.unflatten(0, (b, k + 1))
                local_map, global_map = maps[:, :k].flatten(0, 1), maps[:, k]
            else:
                global_map = self._trunk(crops[:, k], local=False)
                local_map = self._trunk(crops[:, :k].flatten(0, 1), local=True)
            full_map = self._trunk_rest(global_map, split)
            selection = with_activations(selection, full_map.detach(), sizes)
        return TrunkMaps(global_map, local_map, selection)

    def _trunk_rest(self, fmap: torch.Tensor, split: int | None) -> torch.Tensor:
        """The shared trunk's modules ``[split:]`` on ``fmap`` (``fmap`` itself when None)."""
        return fmap if split is None else self.backbone.features[split:](fmap)

    def forward_features(self, pixels: torch.Tensor, sizes: torch.Tensor) -> Features:
        """Views + representation + trunks -> one token per view (K patches, then the global
        view) and the patch selection."""
        maps = self.forward_trunk(pixels, sizes)
        b = pixels.shape[0]
        global_token = self._embed(maps.global_map, local=False).unsqueeze(1)
        k = maps.selection.boxes.shape[1]
        local_tokens = self._embed(maps.local_maps, local=True).unflatten(0, (b, k))
        return Features(torch.cat([local_tokens, global_token], dim=1), maps.selection)

    def forward_head(self, features: Features) -> GLFFOutput:
        """Fusion + classifier: :meth:`forward_features`'s output -> the model's outputs."""
        logits, attention = classify(features.tokens, self.head, self.fusion)
        sel = features.selection
        return GLFFOutput(logits, sel.boxes, sel.windows, sel.activations, attention)

    def forward(self, pixels: torch.Tensor, sizes: torch.Tensor) -> GLFFOutput:
        """``pixels uint8 [B, 3, H, W]`` (zero-padded), ``sizes int64 [B, 2]`` -> outputs."""
        return self.forward_head(self.forward_features(pixels, sizes))


class GlobalOnly(nn.Module):
    """The ``global_only`` baseline (the paper's CNN_aug): backbone on the 224 global view ->
    average pool -> ``Linear(C, 1)``."""

    def __init__(self, config: ModelConfig, backbone_weights: str | Path | None = None) -> None:
        super().__init__()
        if config.arch != "global_only":
            raise ValueError("GlobalOnly needs arch='global_only'")
        self.config = config
        self.channels_last = False
        self.reference_crops = False  # True: crops as before the CPU fast path (benchmarks)
        self.backbone = build_backbone(config.backbone, backbone_weights)
        adapt_first_conv(self.backbone, config.input_repr)
        self.head = nn.Linear(self.backbone.out_channels, 1)

    def forward_trunk(
        self, pixels: torch.Tensor, sizes: torch.Tensor, *, split: int | None = None
    ) -> TrunkMaps:
        """The global view through the trunk (its first ``split`` modules with ``split``);
        no patches (``local_maps`` is empty)."""
        sizes = sizes.to(pixels.device)
        views = _cropper(pixels, sizes, self.config, self.reference_crops)
        x = views(central_squares(sizes).unsqueeze(1))[:, 0]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        fmap = self.backbone(x) if split is None else self.backbone.features[:split](x)
        b = fmap.shape[0]
        none = torch.zeros(b, 0, dtype=torch.long, device=fmap.device)
        boxes = torch.zeros(b, 0, 4, device=fmap.device)
        selection = PatchSelection(boxes, none, none, none.float())
        return TrunkMaps(fmap, fmap[:0], selection)

    def forward_features(self, pixels: torch.Tensor, sizes: torch.Tensor) -> Features:
        """Global view + representation + trunk -> pooled features ``[B, 1, C]``."""
        maps = self.forward_trunk(pixels, sizes)
        return Features(token(maps.global_map, None).unsqueeze(1), maps.selection)

    def forward_head(self, features: Features) -> GLFFOutput:
        """The classifier: ``Linear(C, 1)`` on the pooled features."""
        logits, attention = classify(features.tokens, self.head, None)
        sel = features.selection
        return GLFFOutput(logits, sel.boxes, sel.windows, sel.activations, attention)

    def forward(self, pixels: torch.Tensor, sizes: torch.Tensor) -> GLFFOutput:
        """``pixels uint8 [B, 3, H, W]`` (zero-padded), ``sizes int64 [B, 2]`` -> outputs."""
        return self.forward_head(self.forward_features(pixels, sizes))


def build_model(
    config: ModelConfig, backbone_weights: str | Path | None = None
) -> GLFF | GlobalOnly:
    """Build the model described by ``config`` (random or ImageNet-initialised backbone)."""
    if config.arch == "global_only":
        return GlobalOnly(config, backbone_weights)
    return GLFF(config, backbone_weights)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a shared backbone counts once)."""
    return sum(p.numel() for p in model.parameters())
