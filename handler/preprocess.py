"""Turn any picture of one digit into the model's input, as MNIST was made.

The one preprocessing module: the TorchServe handler and ``train.evaluate``
both call :func:`to_model_input`, so offline accuracy is served accuracy.

Recipe for a decoded picture (any size, any Pillow mode):

1. shrink it early to about ``ANALYSIS_SIDE`` pixels (box filter), grey it,
   and put transparent pixels on the background (a canvas of black strokes
   on a transparent background becomes black on white);
2. detect the polarity (is the ink darker or lighter than the border, or
   when the border is ambiguous, than most of the picture?) and make the ink
   bright on a dark background, like MNIST;
3. flatten the background (per-tile level, median-filtered, interpolated;
   paper is divided out so shadows do not weaken the ink), measure the noise
   (the spread of the pixels; when much of the picture is clear ink, which
   widens that spread, at most the noise of 2x2 pixel differences), refuse
   blank pictures, and stretch the contrast so stroke cores saturate;
4. find the ink's bounding box (stray specks outside the digit dropped); when
   it spans most of the picture (a tight crop, a close-up, a low-resolution
   scan), strokes are as wide as the tiles of the background map, which
   would hollow them out: redo step 3 with one background level;
5. crop to the box, grow very thin strokes and erode very thick ones towards
   MNIST's widths, scale it to fit 20x20 keeping the aspect ratio
   (anti-aliased), and paste it in 28x28 so its centre of mass sits at the
   centre - MNIST's recipe;
6. normalise with MNIST's mean and standard deviation.

A 28x28 picture that already is an MNIST digit (pure black background, ink
box of 19-20 pixels, centred by mass) is taken as-is, so MNIST test digits come
out bit-identical to ``normalize(pixels / 255)``.

The steps live in :mod:`handler.ink` (2-3) and :mod:`handler.layout` (4). Imports only numpy,
torch and Pillow: the archive carries the handler package.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageChops

from handler.ink import PreprocessError, flat_level, ink_and_background, ink_levels, uneven
from handler.layout import CENTRE, FIT, INDEX, SIDE, box_stroke_width, fills_frame, ink_box, mnist_layout
from model import normalize

__all__ = ["FIT", "SIDE", "PreprocessError", "draft", "normalize", "to_model_input"]

ANALYSIS_SIDE = 256  # larger pictures are box-reduced to about this before analysis
_BORDER_PIXELS = SIDE * SIDE - (SIDE - 4) ** 2
# ITU-R 601-2 luma, as Pillow's "L" conversion.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_model_input(image: Image.Image) -> torch.Tensor:
    """Return a (1, 28, 28) float32 tensor for one decoded picture of a digit.

    Raises :class:`PreprocessError` when the picture is empty or holds no ink.
    """
    if image.width == 0 or image.height == 0:
        raise PreprocessError("the image is empty (0 pixels)")
    mnist = _as_mnist_digit(image)
    if mnist is not None:
        return torch.from_numpy(normalize(mnist)).unsqueeze(0)
    grey = _grey(image)
    x, background, paper, x_sums = ink_and_background(grey)
    ink, levels = ink_levels(x, background, paper, x_sums)
    box = ink_box(ink, levels)
    if not np.isscalar(background) and fills_frame(box, ink.shape) and uneven(background, levels):
        # Strokes this wide relative to the picture may cover whole tiles of the background map,
        # which then takes them for background and hollows them out. One background level keeps
        # them whole; if it finds no ink or thinner strokes, the map was right (a close-up photo
        # whose shadows only the map removes).
        try:
            flat_ink, flat_levels = ink_levels(x, flat_level(x), paper, x_sums)
            flat_box = ink_box(flat_ink, flat_levels)
            if box_stroke_width(flat_ink, flat_levels, flat_box) > box_stroke_width(ink, levels, box):
                ink, levels, box = flat_ink, flat_levels, flat_box
        except PreprocessError:
            pass
    # Normalised in NumPy: a torch operation costs more than the arithmetic on 784 values.
    return torch.from_numpy(normalize(mnist_layout(ink, levels, box))).unsqueeze(0)


def draft(image: Image.Image) -> None:
    """Let a JPEG not loaded yet decode straight to small greyscale (DCT scaling: several times faster).

    The scale (1/2, 1/4 or 1/8) is the smallest that keeps the longer side at ``ANALYSIS_SIDE``
    pixels or more: :func:`to_model_input` reduces it to the analysis size anyway. Call it right
    after ``Image.open`` and before anything that loads the pixels (``ImageOps.exif_transpose``
    does); :func:`to_model_input` calls it too, and it does nothing to other formats or to loaded
    images.
    """
    if image.format == "JPEG" and image.mode in ("L", "RGB"):
        width, height = image.size
        scale = max(1, min(8, max(width, height) // ANALYSIS_SIDE))
        # Pillow picks the largest power of two at most min(width // w, height // h).
        image.draft("L", (max(1, width // scale), max(1, height // scale)))


def _as_mnist_digit(image: Image.Image) -> np.ndarray | None:
    """The pixels in [0, 1] when ``image`` already is an MNIST-style digit, else None.

    MNIST-style: 28x28 mode L, a black background (most of the 2-pixel border
    is exactly 0), bright ink, an ink box of 19 or 20 pixels, centre of mass
    within a pixel of the centre. Every MNIST digit is; cheap to check.
    """
    if image.size != (SIDE, SIDE) or image.mode != "L":
        return None
    pixels = np.asarray(image)
    border_ink = (
        np.count_nonzero(pixels[:2])
        + np.count_nonzero(pixels[-2:])
        + np.count_nonzero(pixels[2:-2, :2])
        + np.count_nonzero(pixels[2:-2, -2:])
    )
    if 2 * border_ink >= _BORDER_PIXELS or pixels.max() < 128:  # border median not 0, or faint
        return None
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    if max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 not in (FIT - 1, FIT):
        return None
    x = pixels.astype(np.float32) / 255.0
    mass = x.sum()
    cy, cx = x.sum(axis=1) @ INDEX / mass, x.sum(axis=0) @ INDEX / mass
    if abs(cy - CENTRE) > 1 or abs(cx - CENTRE) > 1:
        return None
    return x


def _grey(image: Image.Image) -> np.ndarray:
    """A float32 (H, W) image in [0, 1], at most about ANALYSIS_SIDE pixels a side.

    Transparent pixels are composited onto a background that contrasts with
    the opaque ones (white behind dark strokes, black behind light ones).
    Greyed and alpha-split at full size with Pillow's single passes, then box-reduced:
    the float work happens on the small picture only.
    """
    draft(image)
    factor = math.ceil(max(image.size) / ANALYSIS_SIDE)
    mode = image.mode
    if mode in ("L", "RGB", "1") or (mode == "P" and "transparency" not in image.info):
        luma = _luma(image)
        return _small(luma.reduce(factor) if factor > 1 else luma)
    if mode in ("LA", "RGBA", "PA") or (mode == "P" and "transparency" in image.info):
        if mode == "P":
            image = image.convert("RGBA")
        alpha = image.getchannel("A")
        # Premultiplied luma, as a compositing would weigh it: reduced, it stays correct at the edges.
        luma_p = ImageChops.multiply(_luma(image.convert("RGB") if mode == "PA" else image), alpha)
        if factor > 1:
            luma_p, alpha = luma_p.reduce(factor), alpha.reduce(factor)
        return _composite(_small(luma_p), _small(alpha))
    image, scale = _reducible(image)
    if factor > 1:
        image = image.reduce(factor)
    mode = image.mode
    if mode == "RGB":
        return _small(image.convert("L"))
    if mode in ("I", "F"):
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=scale, neginf=0.0)
        if mode == "I" and scale == 255.0 and grey.max() > 255:
            scale = 65535.0
        if mode == "F" and grey.max() <= 1.0:
            scale = 1.0
        return np.clip(grey / scale, 0.0, 1.0)
    pixels = _small(image)
    if mode == "L":
        return pixels
    # Premultiplied alpha ("La"/"RGBa"): grey = luma_p + (1 - alpha) * background.
    return _composite(pixels[..., 0] if mode == "La" else pixels[..., :3] @ _LUMA, pixels[..., -1])


def _luma(image: Image.Image) -> Image.Image:
    """``image`` as mode L; a palette picture through its palette's luma (a table look-up, not a per-pixel RGB)."""
    if image.mode == "L":
        return image
    if image.mode == "P":
        palette = image.getpalette("RGB") or []
        rgb = np.zeros((256, 3), dtype=np.float32)
        entries = np.asarray(palette, dtype=np.float32).reshape(-1, 3)[:256]
        rgb[: len(entries)] = entries
        table = np.round(rgb @ _LUMA).astype(np.uint8).tolist()
        return Image.frombuffer("L", image.size, image.tobytes(), "raw", "L", 0, 1).point(table)
    return image.convert("L")


def _small(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) * np.float32(1 / 255)


def _composite(luma_p: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Premultiplied luma over a background that contrasts with the opaque pixels: grey in [0, 1]."""
    coverage = float(alpha.sum())
    if coverage == 0:
        raise PreprocessError("no digit found in the image: it is fully transparent")
    background = 1.0 if luma_p.sum() / coverage < 0.5 else 0.0
    return luma_p + (1.0 - alpha) * background


def _reducible(image: Image.Image) -> tuple[Image.Image, float]:
    """``image`` in a mode Image.reduce handles, and the value of full intensity."""
    mode = image.mode
    if mode in ("L", "RGB", "La", "RGBa"):
        return image, 255.0
    if mode in ("LA", "RGBA"):
        return image.convert(mode[:-1] + "a"), 255.0
    if mode.startswith("I;16"):
        return image.convert("I"), 65535.0
    if mode in ("I", "F"):
        return image, 255.0
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return (image.convert("RGBA").convert("RGBa"), 255.0) if has_alpha else (image.convert("L"), 255.0)
    if mode == "1":
        return image.convert("L"), 255.0
    if "A" in image.getbands():
        return image.convert("RGBA").convert("RGBa"), 255.0
    try:
        return image.convert("RGB"), 255.0  # CMYK, YCbCr, HSV, ...
    except ValueError:
        return image.getchannel(0), 255.0  # e.g. LAB: its first band is the lightness
