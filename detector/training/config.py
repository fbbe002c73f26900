"""The resolved training configuration (saved in every checkpoint's metadata)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from detector.backbones import BackboneName
from detector.model import Arch, LocalBackbone, ModelConfig, canonical_arch
from detector.patches import PatchStrategy
from detector.representation import INPUT_REPRS, InputRepr
from detector.training.augment import AugmentConfig, DebiasConfig


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``python -m detector train`` does; defaults are the paper's settings."""

    train: str
    val: str
    out: str
    train_split: str | None = None
    val_split: str | None = None
    arch: Arch = "glff"  # glff | global_only (old names accepted, see ModelConfig)
    patches: PatchStrategy = "psm"  # ignored for global_only
    backbone: BackboneName = "resnet50"
    backbone_weights: str | None = "imagenet"  # "imagenet", a .pth file, or None (random)
    local_backbone: LocalBackbone = "shared"
    input_repr: InputRepr = "rgb"  # backbone input, see detector.representation
    extra_train: tuple[str, ...] = ()  # more training manifests/folders (e.g. synth-fakes output)
    debias: bool = False  # same random crop + JPEG re-encode for both classes (train and val)
    freeze_backbone: int = 0  # first N trunk modules frozen (their BN too)
    epochs: int = 100
    batch_size: int = 64
    accum_steps: int = 1
    lr: float = 1e-4
    beta1: float = 0.9
    weight_decay: float = 0.0
    monitor: str = "acc"  # acc | ap: validation metric for best/early stopping (paper: acc)
    patience: int = 15
    lr_patience: int = 5
    lr_factor: float = 0.1
    min_lr: float = 1e-6
    min_delta: float = 1e-3
    blur_prob: float = 0.1
    jpeg_prob: float = 0.1
    hflip: bool = True
    val_blur_sigma: float = 1.5
    val_jpeg_quality: int = 65
    val_degrade: bool = True  # authors' validation: fixed blur/JPEG with the train probabilities
    workers: int = 4
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    limit_train_batches: int | None = None
    name: str = ""
    version: str = "0.1.0"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", canonical_arch(self.arch))
        if self.monitor not in ("acc", "ap"):
            raise ValueError("monitor must be 'acc' or 'ap'")
        if self.input_repr not in INPUT_REPRS:
            raise ValueError(f"input_repr must be one of {INPUT_REPRS}")
        if self.batch_size < 1 or self.accum_steps < 1 or self.epochs < 1:
            raise ValueError("batch_size, accum_steps and epochs must be at least 1")

    def model_config(self) -> ModelConfig:
        """The :class:`detector.model.ModelConfig` this run trains."""
        return ModelConfig(
            arch=self.arch,
            backbone=self.backbone,
            patch_strategy="none" if self.arch == "global_only" else self.patches,
            local_backbone=self.local_backbone,
            input_repr=self.input_repr,
        )

    def augment(self) -> AugmentConfig:
        """Training augmentation settings."""
        return AugmentConfig(blur_prob=self.blur_prob, jpeg_prob=self.jpeg_prob, hflip=self.hflip)

    def debias_config(self) -> DebiasConfig | None:
        """The format-debiasing pipeline, when ``debias`` is on."""
        return DebiasConfig() if self.debias else None

    @property
    def run_name(self) -> str:
        """Checkpoint name: ``--name`` or ``<arch>-<backbone>``."""
        return self.name or f"{self.arch}-{self.backbone}"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys ignored, for older checkpoints)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "extra_train" in values:
            values["extra_train"] = tuple(values["extra_train"])
        return cls(**values)
