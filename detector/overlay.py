"""Draw patch evidence on an image so that a moderator can look rather than read."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from detector.decode import DecodedImage
from detector.engine import Prediction

__all__ = ["draw_overlay", "font_size", "save_overlay"]

COLOURS = {3: (230, 40, 40), 2: (255, 160, 0), 0: (40, 120, 255)}


def draw_overlay(image: DecodedImage, prediction: Prediction) -> Image.Image:
    """Return an RGB copy of ``image`` with each patch box drawn and labelled ``#rank attention``.

    Large (224 px) patches are red and labelled at their top, small (112 px) patches orange and
    labelled at their bottom, ``rsz448`` crops blue; the verdict and score are written in the
    top-left corner.
    """
    canvas = Image.fromarray(image.pixels.permute(1, 2, 0).numpy(), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    scale = max(1, round(max(image.width, image.height) / 400))
    font = _font(12 * scale)
    for patch in sorted(prediction.patches, key=lambda p: -p.rank):  # rank 1 drawn last, on top
        colour = COLOURS.get(patch.window, (40, 200, 40))
        x0, y0, x1, y1 = patch.box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=2 * scale)
        label = f"#{patch.rank} {patch.attention:.2f}"
        # large patches are labelled at their top, small ones at their bottom: fewer overlaps
        y = y0 + 2 * scale if patch.window != 2 else y1 - 2 * scale - font_size(font)
        _label(draw, (x0 + 2 * scale, y), label, colour, font)
    verdict = "SYNTHETIC" if prediction.is_synthetic else "real"
    header = f"{verdict} {prediction.score:.3f} (t={prediction.threshold:.2f})"
    _label(draw, (2, 2), header, (0, 0, 0), font)
    return canvas


def save_overlay(image: DecodedImage, prediction: Prediction, path: str | Path) -> Path:
    """Write :func:`draw_overlay` as PNG to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_overlay(image, prediction).save(path, format="PNG")
    return path


def font_size(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    """Height in pixels of a line of text in ``font``."""
    box = font.getbbox("#0 0.00")
    return int(box[3])


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    colour: tuple[int, int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    box = draw.textbbox(xy, text, font=font)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=colour)
    draw.text(xy, text, fill=(255, 255, 255), font=font)
