"""Render MNIST digits as pictures users send: phone photos, canvas drawings, scans.

Each style starts from a smooth upsampling of the 28x28 digit, thresholded at
a random level (stroke thickness varies), and builds the picture around it the
way the real thing is made: ink on lit paper photographed and JPEG-compressed,
black strokes on a transparent browser canvas, a grey 16-bit or palette scan...

    from train.renderers.user_style import render_bytes
    data, ext = render_bytes(digit, "photo", seed=3)  # encoded file bytes, "jpg"

Styles: ``photo``, ``canvas``, ``scan``, ``paper`` (a clean dark-on-white drawing),
``inverted-small`` (a tiny dark-on-white picture), ``offcentre`` (MNIST's polarity,
bigger, digit anywhere), and digits that fill the frame: ``tight-thick`` (thick
strokes cropped to the ink), ``tight-inverted`` (light on dark, cropped to the ink),
``lowres-blur`` (shrunk to 12 or 16 px and upscaled to 64 with blur), ``lowres-8``
(the same from 8 px) and ``edge-touching`` (strokes cut by the top and bottom edges).

CLI: ``python -m train.renderers.user_style --out renders --per-style 100`` writes
``<out>/<style>/<n>_<digit>.<ext>`` and ``<out>/labels.csv`` from MNIST test digits
(``--split train`` from training digits).
"""

import csv
import functools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from scripts.cli import OneLineParser, fail, positive_int
from train.renderers.strokes import (
    blurred,
    encode,
    fit,
    frame,
    lighting,
    noise,
    place,
    shade,
    stroke_alpha,
    thick_alpha,
    warp,
)

Render = Callable[[np.ndarray, np.random.Generator], Image.Image]


# ---- styles -------------------------------------------------------------------------


def photo(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A phone photo of ink on off-white paper: 400-1200 px RGB, uneven light, grain, blur, tilt."""
    long_side = int(rng.integers(400, 1201))
    width, height = (long_side, long_side * 3 // 4) if rng.random() < 0.5 else (long_side * 3 // 4, long_side)
    side = int(min(width, height) * rng.uniform(0.35, 0.75))  # the 28x28 field; the digit is ~20/28 of it
    alpha = stroke_alpha(digit, side, rng.uniform(0.3, 0.7), rng)
    alpha = warp(alpha, rng.uniform(-12, 12), 0.04, rng)
    coverage = place(alpha, height, width, rng) * np.float32(rng.uniform(0.8, 0.97))
    paper = rng.uniform(0.82, 0.95) - np.array([0.0, 0.01, 0.04]) * rng.random()
    ink = np.array([0.1, 0.1, 0.3]) * rng.random() + rng.uniform(0.02, 0.12)
    light = lighting(height, width, rng) * np.float32(rng.uniform(0.8, 1.05) * 255)
    # The lens blurs the ink's edges; the light varies too slowly for its blur to matter.
    coverage = blurred(np.round(coverage * 255).astype(np.uint8), rng.uniform(0.4, 1.4) * long_side / 800)
    coverage *= np.float32(1 / 255)
    grain = noise(rng, (height, width), rng.uniform(2, 7))  # the sensor's, the same in every channel
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    for channel in range(3):
        plane = coverage * np.float32(ink[channel] - paper[channel])
        plane += np.float32(paper[channel])
        plane *= light
        plane += grain
        plane += noise(rng, (height, width), 1.5)
        rgb[..., channel] = np.clip(plane, 0, 255, out=plane)
    return Image.fromarray(rgb)


def canvas(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A browser-canvas drawing: black anti-aliased strokes on a transparent 280x280 RGBA."""
    side = int(280 * rng.uniform(0.7, 1.1))
    alpha = stroke_alpha(digit, side, rng.uniform(0.2, 0.5), rng)
    if rng.random() < 0.4:  # a fat brush
        alpha = np.asarray(Image.fromarray(alpha).filter(ImageFilter.MaxFilter(int(rng.choice([3, 5, 7])))))
    alpha = warp(alpha, rng.uniform(-8, 8), 0.02, rng)
    alpha = fit(alpha, 280)
    field = place(alpha, 280, 280, rng, margin=0.0)
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., 3] = np.round(field * 255).astype(np.uint8)
    return Image.fromarray(rgba)  # RGBA


def scan(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A flatbed scan: dark grey on light grey, mild noise; 16-bit greyscale or a 16-colour palette."""
    size = int(rng.integers(150, 501))
    side = int(size * rng.uniform(0.6, 1.0))
    alpha = stroke_alpha(digit, side, rng.uniform(0.3, 0.65), rng)
    alpha = fit(warp(alpha, rng.uniform(-5, 5), 0.0, rng), size)
    coverage = place(alpha, size, size, rng)
    paper, ink = rng.uniform(0.72, 0.92), rng.uniform(0.08, 0.4)
    grey = coverage * np.float32(ink - paper)
    grey += np.float32(paper)
    grey += noise(rng, coverage.shape, rng.uniform(0.005, 0.02))
    grey = np.clip(grey, 0, 1, out=grey)
    if rng.random() < 0.5:
        return Image.fromarray(np.round(grey * 65535).astype(np.uint16))  # mode I;16
    image = Image.fromarray(np.round(grey * 255).astype(np.uint8)).convert("RGB")
    return image.quantize(colors=16)  # mode P


def paper(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A clean drawing exported from a paint program: dark on white, 300-900 px RGB, digit anywhere."""
    width, height = (int(v) for v in rng.integers(300, 901, size=2))
    side = int(min(width, height) * rng.uniform(0.3, 0.9))
    alpha = stroke_alpha(digit, side, rng.uniform(0.3, 0.6), rng)
    coverage = place(alpha, height, width, rng)
    ink = rng.uniform(0, 0.3, size=3)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    for channel in range(3):
        plane = coverage * np.float32(-255 * (1.0 - ink[channel]))
        plane += np.float32(255.5)  # + 0.5: the cast below rounds
        rgb[..., channel] = plane
    return Image.fromarray(rgb)


def inverted_small(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A small dark-on-white picture (20-64 px, not square), digit anywhere, 8-bit grey or RGB."""
    height, width = (int(v) for v in rng.integers(20, 65, size=2))
    side = int(min(height, width) * rng.uniform(0.9, 1.3))
    alpha = fit(stroke_alpha(digit, max(side, 14), rng.uniform(0.3, 0.6), rng), min(height, width))
    coverage = place(alpha, height, width, rng, margin=0.0)
    grey = rng.uniform(0.85, 1.0) * (1 - coverage) + rng.uniform(0.0, 0.2) * coverage
    image = Image.fromarray(np.round(grey * 255).astype(np.uint8))
    return image.convert("RGB") if rng.random() < 0.5 else image


def offcentre(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """MNIST's polarity (light on black) but a bigger canvas, digit off-centre and of any size."""
    size = int(rng.integers(48, 241))
    side = int(size * rng.uniform(0.4, 1.0))
    alpha = stroke_alpha(digit, side, rng.uniform(0.25, 0.6), rng)
    field = place(alpha, size, size, rng, margin=0.0)
    level = rng.uniform(0.7, 1.0)
    return Image.fromarray(np.round(field * level * 255).astype(np.uint8))


# ---- frame-filling styles: the digit is most of the picture --------------------------


def tight_thick(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Thick dark strokes on white, cropped to the ink box with a 0-2 px margin (32-160 px tall)."""
    alpha = thick_alpha(digit, int(rng.integers(32, 161)), rng, grow=(0.4, 1.0))
    coverage = frame(alpha, tuple(int(m) for m in rng.integers(0, 3, size=4)))
    image = shade(coverage, True, rng)
    return image.convert("RGB") if rng.random() < 0.5 else image


def tight_inverted(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Light strokes on a dark ground, cropped to the ink box with a 0-2 px margin (24-128 px tall)."""
    alpha = thick_alpha(digit, int(rng.integers(24, 129)), rng, grow=(0.0, 0.8))
    return shade(frame(alpha, tuple(int(m) for m in rng.integers(0, 3, size=4))), False, rng)


def lowres_blur(digit: np.ndarray, rng: np.random.Generator, sizes: tuple[int, ...] = (12, 16)) -> Image.Image:
    """A blurry low-resolution scan: the digit filling 80-100% of a square shrunk to one of ``sizes`` pixels,
    upscaled to 64x64 and blurred; either polarity. Strokes are a pen's: shrinking thickens them."""
    alpha = thick_alpha(digit, 96, rng, grow=(0.0, 0.3))
    box = frame(alpha, (0, 0, 0, 0))
    side = round(max(box.shape) / rng.uniform(0.8, 1.0))
    square = place(box, max(side, box.shape[0]), max(side, box.shape[1]), rng, margin=0.0)
    low = int(rng.choice(sizes))
    small = Image.fromarray(np.round(square * 255).astype(np.uint8)).resize((low, low), Image.Resampling.BOX)
    up = small.resize((64, 64), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return shade(np.asarray(up, dtype=np.float32) / 255.0, rng.random() < 0.5, rng)


def edge_touching(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A square picture as tall as the digit: strokes touch or cross the top and bottom edges; either polarity."""
    alpha = thick_alpha(digit, int(rng.integers(40, 129)), rng, grow=(0.0, 0.8))
    cut = tuple(-int(m) for m in rng.integers(0, 3, size=2))
    column = frame(alpha, (*cut, 0, 0))
    height, width = column.shape
    square = place(column, height, max(height, width), rng, margin=0.0)
    return shade(square, rng.random() < 0.5, rng)


# zlib's fastest level: the same pixels, and renders are made by the thousand for the calibration.
FAST_PNG = {"compress_level": 1}
STYLES: dict[str, tuple[Render, str, dict]] = {
    # name: (renderer, file format, save options)
    "photo": (photo, "JPEG", {}),
    "canvas": (canvas, "PNG", FAST_PNG),
    "scan": (scan, "PNG", FAST_PNG),
    "paper": (paper, "PNG", FAST_PNG),
    "inverted-small": (inverted_small, "PNG", FAST_PNG),
    "offcentre": (offcentre, "PNG", FAST_PNG),
    "tight-thick": (tight_thick, "PNG", FAST_PNG),
    "tight-inverted": (tight_inverted, "PNG", FAST_PNG),
    "lowres-blur": (lowres_blur, "PNG", FAST_PNG),
    "lowres-8": (functools.partial(lowres_blur, sizes=(8,)), "PNG", FAST_PNG),
    "edge-touching": (edge_touching, "PNG", FAST_PNG),
}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}


def render(digit: np.ndarray, style: str, seed: int) -> Image.Image:
    """``digit`` (uint8 28x28, MNIST polarity) as a ``style`` picture; the same seed, the same picture."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}: choose from {', '.join(STYLES)}")
    return STYLES[style][0](np.asarray(digit, dtype=np.uint8), np.random.default_rng(seed))


def render_bytes(digit: np.ndarray, style: str, seed: int) -> tuple[bytes, str]:
    """The encoded file a user would send, and its extension ("jpg"/"png")."""
    image = render(digit, style, seed)
    _, fmt, params = STYLES[style]
    if fmt == "JPEG":
        params = {"quality": int(np.random.default_rng(seed).integers(60, 93))}
    return encode(image, fmt, **params), EXTENSIONS[fmt]


# ---- CLI ----------------------------------------------------------------------------


def pick(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct indices of a set of ``n_total`` digits, reproducible from ``seed``."""
    return np.random.default_rng(seed).permutation(n_total)[:n]


def write_renders(images, labels, out: Path, styles: list[str], per_style: int, seed: int) -> Path:
    """Write ``per_style`` renders per style and ``labels.csv`` (file, style, label, mnist_index)."""
    rows = []
    for style in styles:
        (out / style).mkdir(parents=True, exist_ok=True)
        for n, index in enumerate(pick(len(labels), per_style, seed)):
            data, ext = render_bytes(images[index], style, seed * 1_000_003 + int(index))
            name = f"{style}/{n:05d}_{int(labels[index])}.{ext}"
            (out / name).write_bytes(data)
            rows.append((name, style, int(labels[index]), int(index)))
    labels_csv = out / "labels.csv"
    with open(labels_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "style", "label", "mnist_index"])
        writer.writerows(rows)
    return labels_csv


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m train.renderers.user_style",
        description="Render MNIST digits as user-style pictures (photo, canvas, scan, ...) with labels.csv.",
    )
    parser.add_argument("--out", required=True, help="folder to write <style>/<n>_<digit>.<ext> and labels.csv into")
    parser.add_argument("--per-style", type=positive_int, default=100, help="renders per style (default: %(default)s)")
    parser.add_argument(
        "--styles", nargs="+", default=list(STYLES), choices=list(STYLES), help="styles to render (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="picks the digits and the randomness (default: 0)")
    parser.add_argument(
        "--split", default="test", choices=["test", "train"], help="MNIST split to render (default: %(default)s)"
    )
    parser.add_argument("--data-dir", help="local MNIST IDX copy (default: $MNIST_DIR, else data/ or download)")
    args = parser.parse_args(argv)
    from train.data import load_mnist_or_report

    if (splits := load_mnist_or_report(args.data_dir)) is None:
        return 1
    source = splits[0] if args.split == "train" else splits[1]
    if args.per_style > len(source):
        return fail(f"--per-style is at most {len(source)} (the MNIST {args.split} set)", 2)
    try:
        labels_csv = write_renders(
            source.images.numpy(), source.labels.numpy(), Path(args.out), args.styles, args.per_style, args.seed
        )
    except OSError as err:
        return fail(f"cannot write to {args.out}: {err}", 1)
    print(f"wrote {args.per_style} renders for each of {len(args.styles)} styles; labels in {labels_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
