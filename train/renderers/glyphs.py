"""Render letters and symbols that are not digits, in the fonts the machine has.

One to three characters from a letter or symbol set that leaves out what reads as a digit
(O, l, Z, S, B, g, q, ...), in a random TrueType font from Debian's DejaVu and Liberation
packages (``fonts-dejavu-core``, ``fonts-liberation``; Pillow's own font where there are none),
either polarity, tilted a little, sometimes thickened or blurred. The not-a-digit check is
fitted on them, with other seeds than any set it is measured on.

    from train.renderers.glyphs import render
    picture = render(seed=3)  # a PIL image
"""

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
# Letters and symbols a handwritten digit is not mistaken for: no O/o/Q/D (0), I/l/i/j/T/t (1, 7),
# Z/z (2), S/s (5), B (8), b/G (6), g/q (9), no brackets or slashes (1).
CHARACTERS = "ACEFHKMNPRUVWXYacefhkmnprvwxy#@&%$?!*+=~<>"


@functools.cache
def font_files() -> tuple[Path, ...]:
    """The TrueType fonts found in :data:`FONT_DIRS` (none: Pillow's built-in font is used)."""
    return tuple(sorted(p for d in FONT_DIRS if d.is_dir() for p in d.glob("*.ttf") if "Math" not in p.name))


def _font(rng: np.random.Generator, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    files = font_files()
    if not files:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(files[int(rng.integers(len(files)))]), size)


def render(seed: int, side: tuple[int, int] = (40, 120)) -> Image.Image:
    """One to three characters on a canvas of ``side`` pixels (a range), either polarity; grey or RGB."""
    rng = np.random.default_rng(seed)
    height = int(rng.integers(side[0], side[1] + 1))
    count = int(rng.choice([1, 1, 2, 3]))
    text = "".join(rng.choice(list(CHARACTERS), count))
    font = _font(rng, max(8, int(height * rng.uniform(0.5, 0.9))))
    left, top, right, bottom = font.getbbox(text)
    width = max(height // 2, int((right - left) * rng.uniform(1.05, 1.4)))
    paper, ink = (int(rng.integers(200, 256)), int(rng.integers(0, 70)))
    if rng.random() < 0.5:
        paper, ink = 255 - paper, 255 - ink
    image = Image.new("L", (width, height), paper)
    x = (width - (right - left)) / 2 - left + rng.uniform(-0.1, 0.1) * width
    y = (height - (bottom - top)) / 2 - top + rng.uniform(-0.1, 0.1) * height
    ImageDraw.Draw(image).text((x, y), text, fill=ink, font=font)
    image = image.rotate(rng.uniform(-15, 15), Image.Resampling.BICUBIC, fillcolor=paper)
    if rng.random() < 0.3:  # a heavier pen
        grow = ImageFilter.MinFilter(3) if paper > ink else ImageFilter.MaxFilter(3)
        image = image.filter(grow)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return image.convert("RGB") if rng.random() < 0.3 else image
