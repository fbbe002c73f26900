"""Aligned fakes without a generator: real photos reconstructed by small autoencoders.

A detector trained on real photos versus the same photos passed through an autoencoder learns
the decoder's upsampling fingerprint, not the content (the pair shares it); such detectors
generalize to unseen generators (Zhang et al. 2019 "AutoGAN"; Rajan et al., ICLR 2025). No
pretrained autoencoder is available offline, so :func:`synthesize` trains small ones on the
real photos themselves, on the CPU, with the decoder upsampling kinds generators use:

* ``tconv``: transposed convolution (kernel 4, stride 2), the classic checkerboard source;
* ``nearest``: nearest-neighbour upsampling then a 3x3 convolution;
* ``bilinear``: bilinear upsampling then a 3x3 convolution;
* ``pixelshuffle``: a convolution to 4x channels then sub-pixel shuffle;

each at total factors 2, 4 or 8 (one 2x stage per factor of two). The reconstruction gets the
photo's per-channel colour mean and spread back (:func:`match_colour`). Every real photo is
reconstructed by one autoencoder (assigned round-robin after a seeded shuffle) at its own
resolution, written as PNG, and ``manifest.csv`` links each fake to its real photo. The same
seed gives the same files.

    python -m detector synth-fakes REAL_DIR --out DIR [--kinds tconv nearest] [--factors 2 4]
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from detector.errors import DetectorError
from detector.training.datasets import IMAGE_SUFFIXES, load_rgb, read_manifest, to_tensor

log = logging.getLogger(__name__)

UPSAMPLE_KINDS = ("tconv", "nearest", "bilinear", "pixelshuffle")
FACTORS = (2, 4, 8)
MANIFEST_FIELDS = ("path", "label", "split", "family", "source", "real_path", "kind", "factor")


def _up_stage(kind: str, cin: int, cout: int) -> nn.Module:
    """One 2x upsampling stage of the given kind, ``cin`` -> ``cout`` channels."""
    if kind == "tconv":
        return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    if kind in ("nearest", "bilinear"):
        up = (
            nn.Upsample(scale_factor=2, mode="nearest")
            if kind == "nearest"
            else nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        )
        return nn.Sequential(up, nn.Conv2d(cin, cout, 3, padding=1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"upsampling kind {kind!r} not in {UPSAMPLE_KINDS}")


class AutoEncoder(nn.Module):
    """Strided-conv encoder (factor ``2**n``) and a decoder of ``n`` upsampling stages.

    Images go in and out as ``float [B, 3, H, W]`` in [0, 1]; ``H`` and ``W`` must be
    multiples of ``factor`` (:func:`reconstruct` pads).
    """

    def __init__(self, kind: str, factor: int, width: int = 32) -> None:
        super().__init__()
        if factor not in FACTORS:
            raise ValueError(f"factor must be one of {FACTORS}")
        if kind not in UPSAMPLE_KINDS:
            raise ValueError(f"upsampling kind {kind!r} not in {UPSAMPLE_KINDS}")
        self.kind, self.factor = kind, factor
        stages = int(math.log2(factor))
        enc: list[nn.Module] = [nn.Conv2d(3, width // 2, 3, padding=1), nn.ReLU()]
        cin = width // 2
        for _ in range(stages):
            enc += [nn.Conv2d(cin, width, 3, stride=2, padding=1), nn.ReLU()]
            cin = width
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = []
        for i in range(stages):
            cout = width if i < stages - 1 else width // 2
            dec += [_up_stage(kind, cin, cout), nn.ReLU()]
            cin = cout
        dec.append(nn.Conv2d(cin, 3, 3, padding=1))
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x)))


@dataclass(frozen=True)
class SynthConfig:
    """How the autoencoders are trained (defaults: about a minute each on one CPU core)."""

    kinds: tuple[str, ...] = UPSAMPLE_KINDS
    factors: tuple[int, ...] = (2, 4)
    steps: int = 150
    batch_size: int = 8
    crop: int = 64
    lr: float = 2e-3
    width: int = 32
    seed: int = 0
    match_colour: bool = True


def real_images(source: Path, split: str | None = None) -> list[Path]:
    """Real photos: every image under a folder, or the ``label == 0`` rows of a manifest CSV."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return [s.path for s in read_manifest(source, split) if s.label == 0]
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is neither a folder nor a manifest CSV")
    paths = sorted(
        p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise ValueError(f"no images under {source}")
    return paths


def _random_crops(
    images: Sequence[torch.Tensor], n: int, size: int, rng: np.random.Generator
) -> torch.Tensor:
    """``n`` random ``size`` crops (uint8 ``[3, H, W]`` images) -> float ``[n, 3, s, s]``."""
    out = []
    for _ in range(n):
        img = images[int(rng.integers(len(images)))]
        h, w = img.shape[1:]
        s = min(size, h, w)
        y, x = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
        crop = img[:, y : y + s, x : x + s].float() / 255.0
        if s < size:
            crop = F.interpolate(crop[None], size=(size, size), mode="bilinear")[0]
        out.append(crop)
    return torch.stack(out)


def train_autoencoder(
    kind: str, factor: int, images: Sequence[torch.Tensor], cfg: SynthConfig, index: int = 0
) -> tuple[AutoEncoder, float]:
    """Train one autoencoder on random crops of ``images``; returns it and its last L1 loss."""
    torch.manual_seed(cfg.seed * 1_000_003 + index)
    rng = np.random.default_rng([cfg.seed, index])
    ae = AutoEncoder(kind, factor, cfg.width)
    opt = torch.optim.Adam(ae.parameters(), lr=cfg.lr)
    loss = torch.tensor(0.0)
    for _ in range(cfg.steps):
        x = _random_crops(images, cfg.batch_size, cfg.crop, rng)
        loss = F.l1_loss(ae(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return ae.eval(), float(loss.detach())


@torch.no_grad()
def reconstruct(ae: AutoEncoder, pixels: torch.Tensor) -> torch.Tensor:
    """``uint8 [3, H, W]`` -> its reconstruction, same size (reflect-padded to the factor)."""
    h, w = pixels.shape[1:]
    f = ae.factor
    ph, pw = (-h) % f, (-w) % f
    x = pixels.float()[None] / 255.0
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    y = ae(x)[0, :, :h, :w]
    return (y * 255.0).round().clamp(0, 255).to(torch.uint8)


def match_colour(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Give ``fake`` (uint8 ``[3, H, W]``) the per-channel mean and spread of ``real``.

    Small autoencoders trained for a minute drift in colour; without this a detector could
    learn "washed-out colours" instead of the decoder's upsampling fingerprint.
    """
    f, r = fake.double(), real.double()
    fm, fs = f.mean(dim=(1, 2), keepdim=True), f.std(dim=(1, 2), keepdim=True)
    rm, rs = r.mean(dim=(1, 2), keepdim=True), r.std(dim=(1, 2), keepdim=True)
    out = (f - fm) / fs.clamp(min=1e-3) * rs + rm
    return out.round().clamp(0, 255).to(torch.uint8)


def synthesize(
    source: Path,
    out: Path,
    cfg: SynthConfig | None = None,
    *,
    split: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> Path:
    """Train the autoencoders on the real photos of ``source``; write one fake per photo.

    Returns the path of ``out/manifest.csv`` (``path`` relative to ``out``, label 1, family
    ``ae-<kind>-x<factor>``, ``real_path`` the photo it reconstructs).
    """
    cfg = cfg or SynthConfig()
    paths = real_images(source, split)
    if limit is not None:
        paths = paths[:limit]
    pixels: list[torch.Tensor] = []
    kept: list[Path] = []
    for p in paths:
        try:
            pixels.append(to_tensor(load_rgb(p)))
            kept.append(p)
        except (DetectorError, OSError, ValueError) as exc:
            log.warning("synth-fakes: skipping %s: %s", p, exc)
    if not kept:
        raise ValueError(f"no decodable real photos in {source}")
    specs = [(k, f) for k in cfg.kinds for f in cfg.factors]
    out.mkdir(parents=True, exist_ok=True)
    models: list[AutoEncoder] = []
    for i, (kind, factor) in enumerate(
        tqdm(specs, desc="train autoencoders", disable=not progress)
    ):
        t0 = time.monotonic()
        ae, loss = train_autoencoder(kind, factor, pixels, cfg, i)
        log.info("autoencoder %s x%d: L1 %.4f (%.0fs)", kind, factor, loss, time.monotonic() - t0)
        models.append(ae)
    order = np.random.default_rng(cfg.seed).permutation(len(kept))
    rows = [
        _write_fake(models[j % len(models)], pixels[idx], kept[idx], out, cfg)
        for j, idx in enumerate(tqdm(order, desc="reconstruct", disable=not progress))
    ]
    rows.sort(key=lambda r: str(r["path"]))
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _write_fake(
    ae: AutoEncoder, pixels: torch.Tensor, real: Path, out: Path, cfg: SynthConfig
) -> dict[str, object]:
    """Reconstruct one photo with ``ae``, save it as PNG in ``out``; its manifest row."""
    fake = reconstruct(ae, pixels)
    if cfg.match_colour:
        fake = match_colour(fake, pixels)
    name = f"{real.stem}-{ae.kind}-x{ae.factor}.png"
    Image.fromarray(fake.permute(1, 2, 0).numpy()).save(out / name)
    return {
        "path": name,
        "label": 1,
        "split": "",
        "family": f"ae-{ae.kind}-x{ae.factor}",
        "source": "synth-fakes",
        "real_path": str(real),
        "kind": ae.kind,
        "factor": ae.factor,
    }
