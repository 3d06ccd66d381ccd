"""Render pictures that are not handwritten digits: photo-like scenes and textures, printed text, shapes, scribbles.

The not-a-digit check (``model/calibration.py``) is measured on them besides Fashion-MNIST;
nothing is fitted to them. Each kind is made the way the real thing looks:

``scene``: a photo-like crop: a colour gradient, a few soft-edged objects, grain, blur, JPEG;
``texture``: a noise texture (wood, fabric, gravel: smooth random fields at a few scales);
``text``: a few lines of printed words, dark on light, 200-700 px;
``shapes``: filled or outlined rectangles, triangles, stars and blobs, one to four of them;
``scribble``: a tangle of looping pen strokes, as a child scribbles.

    from train.renderers.non_digits import render_bytes
    data, ext = render_bytes("text", seed=3)  # encoded file bytes, "png"

CLI: ``python -m train.renderers.non_digits --out nondigits --per-kind 50`` writes ``<out>/<kind>/<n>.<ext>``.
"""

import io
import string
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from scripts.cli import OneLineParser, fail, positive_int

Render = Callable[[np.random.Generator], Image.Image]


def _smooth_field(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [0, 1]: white noise on a coarse grid, upsampled bicubically."""
    gh, gw = max(2, int(height / scale)), max(2, int(width / scale))
    coarse = Image.fromarray((rng.random((gh, gw)) * 255).astype(np.uint8))
    return np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0


def _size(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    width, height = (int(v) for v in rng.integers(low, high + 1, size=2))
    return width, height


def _finish(rgb: np.ndarray, rng: np.random.Generator, blur: float, grain: float) -> Image.Image:
    """Blur and grain as a camera adds them; ``rgb`` is float in [0, 1]."""
    image = Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8))
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, grain, size=(image.height, image.width, 1))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def scene(rng: np.random.Generator, size: tuple[int, int] = (160, 900)) -> Image.Image:
    """A photo-like crop: sky-to-ground gradient, a few soft objects of other colours, light falloff."""
    width, height = _size(rng, *size)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.random(3), rng.random(3)
    t = (y / height)[..., None]
    rgb = top * (1 - t) + bottom * t
    image = Image.fromarray((rgb * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.4) * height
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    rgb = np.asarray(image, dtype=np.float32) / 255.0
    shade = 0.6 + 0.4 * _smooth_field(height, width, max(width, height) / 3, rng)
    return _finish(rgb * shade[..., None], rng, rng.uniform(0.5, 3.0), rng.uniform(1, 6))


def texture(rng: np.random.Generator, size: tuple[int, int] = (64, 600)) -> Image.Image:
    """A close-up of a surface: random fields at two or three scales, sometimes streaked like wood or cloth."""
    width, height = _size(rng, *size)
    field = np.zeros((height, width), dtype=np.float32)
    for scale in rng.choice([3.0, 8.0, 20.0, 60.0], size=int(rng.integers(2, 4)), replace=False):
        field += rng.uniform(0.3, 1.0) * _smooth_field(height, width, float(scale), rng)
    if rng.random() < 0.4:  # streaks: stretch a field along one axis
        streaks = _smooth_field(height, max(2, width // 40), 2.0, rng)
        field += np.asarray(Image.fromarray(streaks).resize((width, height), Image.Resampling.BILINEAR))
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    dark, light = rng.random(3) * 0.5, 0.5 + rng.random(3) * 0.5
    rgb = dark + field[..., None] * (light - dark)
    return _finish(rgb, rng, rng.uniform(0.0, 1.5), rng.uniform(0, 5))


_WORDS = ["the", "and", "invoice", "total", "meeting", "hello", "page", "notes", "order", "shipping", "Dear", "Sir"]


def text(rng: np.random.Generator, size: tuple[int, int] = (200, 700)) -> Image.Image:
    """Printed lines of words (some capitalised, a little punctuation), dark on light."""
    width, height = _size(rng, *size)
    font_size = int(rng.integers(12, max(13, min(48, height // 4))))
    font = ImageFont.load_default(size=font_size)
    paper, ink = rng.uniform(0.85, 1.0), rng.uniform(0.0, 0.3)
    image = Image.new("L", (width, height), int(paper * 255))
    draw = ImageDraw.Draw(image)
    lines = int(rng.integers(2, max(3, height // int(font_size * 1.5))))
    letters = list(string.ascii_letters)
    for line in range(lines):
        words = [str(rng.choice(_WORDS)) if rng.random() < 0.6 else "".join(rng.choice(letters, 5)) for _ in range(8)]
        draw.text(
            (font_size // 2, font_size // 2 + line * font_size * 1.5),
            " ".join(words) + ".",
            fill=int(ink * 255),
            font=font,
        )
    image = image.rotate(rng.uniform(-3, 3), Image.Resampling.BICUBIC, fillcolor=int(paper * 255))
    return _finish(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0, rng, rng.uniform(0, 0.8), 2.0)


def _star(cx: float, cy: float, r: float, points: int, turn: float) -> list[tuple[float, float]]:
    angles = turn + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, r, r * 0.45)
    return [(cx + a * np.cos(t), cy + a * np.sin(t)) for a, t in zip(radii, angles, strict=True)]


def shapes(rng: np.random.Generator, size: tuple[int, int] = (80, 500)) -> Image.Image:
    """One to four geometric shapes, filled or outlined, either polarity."""
    width, height = _size(rng, *size)
    background, ink = (255, 0) if rng.random() < 0.5 else (0, 255)
    image = Image.new("L", (width, height), background)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        r = rng.uniform(0.15, 0.35) * min(width, height)
        filled = rng.random() < 0.6
        line = max(2, int(r / rng.uniform(4, 10)))
        kind = rng.integers(0, 3)
        if kind == 0:
            box = (cx - r, cy - r * rng.uniform(0.4, 1.0), cx + r, cy + r * rng.uniform(0.4, 1.0))
            draw.rectangle(box, fill=ink if filled else None, outline=ink, width=line)
        elif kind == 1:
            points = [(cx + r * np.cos(t), cy + r * np.sin(t)) for t in rng.uniform(0, 2 * np.pi) + np.arange(3) * 2.1]
            draw.polygon(points, fill=ink if filled else None, outline=ink, width=line)
        else:
            points = _star(cx, cy, r, int(rng.integers(5, 8)), rng.uniform(0, np.pi))
            draw.polygon(points, fill=ink if filled else None, outline=ink, width=line)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))


def scribble(rng: np.random.Generator, size: tuple[int, int] = (120, 499)) -> Image.Image:
    """Two to five looping pen strokes that cross each other: a tangle, not a character."""
    side = int(rng.integers(size[0], size[1] + 1))
    image = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(image)
    width = max(2, int(side * rng.uniform(0.01, 0.035)))
    t = np.linspace(0, 2 * np.pi, 400)
    for _ in range(int(rng.integers(2, 6))):
        # A sum of a few sinusoids per axis: a smooth closed curve that loops several times.
        xy = np.zeros((t.size, 2))
        for axis in range(2):
            for frequency in rng.choice(np.arange(1, 7), size=3, replace=False):
                xy[:, axis] += rng.uniform(0.2, 1.0) * np.sin(frequency * t + rng.uniform(0, 2 * np.pi))
        xy = (xy - xy.min(0)) / np.maximum(np.ptp(xy, 0), 1e-6)
        xy = (0.1 + 0.8 * xy) * side
        draw.line([tuple(p) for p in xy], fill=int(rng.integers(0, 80)), width=width, joint="curve")
    return image


KINDS: dict[str, tuple[Render, str]] = {
    # name: (renderer, file format)
    "scene": (scene, "JPEG"),
    "texture": (texture, "JPEG"),
    "text": (text, "PNG"),
    "shapes": (shapes, "PNG"),
    "scribble": (scribble, "PNG"),
}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}


def render(kind: str, seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    """A ``kind`` picture; the same seed, the same picture. ``size``: the range of its sides, instead of the kind's."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    return KINDS[kind][0](rng, size) if size else KINDS[kind][0](rng)


def render_bytes(kind: str, seed: int) -> tuple[bytes, str]:
    """The encoded file a user would send, and its extension."""
    fmt = KINDS[kind][1]
    buffer = io.BytesIO()
    render(kind, seed).save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue(), EXTENSIONS[fmt]


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m train.renderers.non_digits", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write <kind>/<n>.<ext> into")
    parser.add_argument("--per-kind", type=positive_int, default=50, help="pictures per kind (default: %(default)s)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS), help="default: all")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        for kind in args.kinds:
            (Path(args.out) / kind).mkdir(parents=True, exist_ok=True)
            for n in range(args.per_kind):
                data, ext = render_bytes(kind, args.seed * 1_000_003 + n)
                (Path(args.out) / kind / f"{n:05d}.{ext}").write_bytes(data)
            print(f"wrote {args.per_kind} {kind} pictures into {Path(args.out) / kind}")
    except OSError as err:
        return fail(f"cannot write to {args.out}: {err}", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
