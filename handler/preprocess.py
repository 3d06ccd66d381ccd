"""Turn any picture of one digit into the model's input, as MNIST was made.

The one preprocessing module: the TorchServe handler and ``train.evaluate``
both call :func:`to_model_input`, so offline accuracy is served accuracy.

Recipe for a decoded picture (any size, any Pillow mode):

1. grey it (transparent pixels go on a background that contrasts with the
   opaque ones: a canvas of black strokes on a transparent background becomes
   black on white) and shrink it to about ``COARSE_SIDE`` pixels (box filter):
   enough to find a digit, a fraction of the work (a JPEG decodes straight to
   a small scale);
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
5. when the digit is small at that size, read its box again from the picture
   at the resolution that gives it about ``LAYOUT_SIDE`` pixels, with the same
   background and levels;
6. crop to the box, grow very thin strokes and erode very thick ones towards
   MNIST's widths, scale it to fit 20x20 keeping the aspect ratio
   (anti-aliased), and paste it in 28x28 so its centre of mass sits at the
   centre - MNIST's recipe;
7. normalise with MNIST's mean and standard deviation.

A 28x28 picture that already is an MNIST digit (pure black background, ink
box of 19-20 pixels, centred by mass) is taken as-is, so MNIST test digits come
out bit-identical to ``normalize(pixels / 255)``.

The steps live in :mod:`handler.grey` (1), :mod:`handler.ink` (2-3) and :mod:`handler.layout`
(4, 6). Imports only numpy, torch and Pillow (:mod:`handler.decode` adds a faster PNG decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from handler import grey as _grey
from handler.grey import GreySource
from handler.ink import PreprocessError, expand_region, flat_level, ink_and_background, ink_levels, median, uneven
from handler.layout import CENTRE, FIT, INDEX, SIDE, box_stroke_width, fills_frame, ink_box, mnist_layout
from model import normalize

__all__ = ["FIT", "SIDE", "PreprocessError", "draft", "normalize", "to_model_input"]

COARSE_SIDE = 128  # the whole picture is box-reduced to about this (longer side) to find the digit
LAYOUT_SIDE = 24  # a digit's box smaller than this (longer side) is read again at this many pixels or more
# A JPEG decodes at the smallest DCT scale keeping this (longer side): the layout's reads need no more.
DRAFT_SIDE = 128
_BORDER_PIXELS = SIDE * SIDE - (SIDE - 4) ** 2


@dataclass
class _Found:
    """The digit as the small picture shows it: ink, levels and box, and how they were found."""

    ink: np.ndarray
    levels: tuple
    mid: float
    box: tuple[int, int, int, int]
    paper: bool
    background: np.ndarray | float
    grid: tuple | None  # the background map's tile_grid, None when the background is one level


def to_model_input(image: Image.Image) -> torch.Tensor:
    """Return a (1, 28, 28) float32 tensor for one decoded picture of a digit.

    Raises :class:`PreprocessError` when the picture is empty or holds no ink.
    """
    if image.width == 0 or image.height == 0:
        raise PreprocessError("the image is empty (0 pixels)")
    mnist = _as_mnist_digit(image)
    if mnist is not None:
        return torch.from_numpy(normalize(mnist)[None])
    draft(image)
    source = GreySource(image)
    factor = source.factor(COARSE_SIDE)
    found = _find(source.read(factor))
    ink, levels, box = found.ink, found.levels, found.box
    long_side = max(box[1] - box[0], box[3] - box[2]) * factor
    fine = max(1, long_side // LAYOUT_SIDE)
    if fine < factor:
        try:
            ink, levels, box = _refine(source, found, factor, fine)
        except PreprocessError:
            pass  # the small picture's reading stands
    # Normalised in NumPy: a torch operation costs more than the arithmetic on 784 values.
    return torch.from_numpy(normalize(mnist_layout(ink, levels, box))[None])


def draft(image: Image.Image) -> None:
    """Let a JPEG not loaded yet decode straight to small greyscale (:func:`handler.grey.draft`).

    Call it right after ``Image.open`` and before anything that loads the pixels
    (``ImageOps.exif_transpose`` does); :func:`to_model_input` calls it too, and
    it does nothing to other formats or to loaded images.
    """
    _grey.draft(image, DRAFT_SIDE)


def _find(grey: np.ndarray) -> _Found:
    """Steps 2-4 on the small picture."""
    x, background, paper, x_sums, grid = ink_and_background(grey)
    ink, levels, mid = ink_levels(x, background, paper, x_sums)
    box = ink_box(ink, levels)
    found = _Found(ink, levels, mid, box, paper, background, grid)
    if grid is not None and fills_frame(box, ink.shape) and uneven(background, levels):
        # Strokes this wide relative to the picture may cover whole tiles of the background map,
        # which then takes them for background and hollows them out. One background level keeps
        # them whole; if it finds no ink or thinner strokes, the map was right (a close-up photo
        # whose shadows only the map removes).
        try:
            level = flat_level(x)
            flat_ink, flat_levels, flat_mid = ink_levels(x, level, paper, x_sums)
            flat_box = ink_box(flat_ink, flat_levels)
            if box_stroke_width(flat_ink, flat_levels, flat_box) > box_stroke_width(ink, levels, box):
                found = _Found(flat_ink, flat_levels, flat_mid, flat_box, paper, level, None)
        except PreprocessError:
            pass
    return found


def _refine(source: GreySource, found: _Found, factor: int, fine: int) -> tuple[np.ndarray, tuple, tuple]:
    """Step 5: the digit's box (and a pixel of the small picture around it) read at ``fine``, the ink
    against the same background, its stroke cores' level measured there; (ink, levels, box)."""
    top, bottom, left, right = found.box
    width, height = source.size
    region = (
        max(0, (left - 1) * factor),
        max(0, (top - 1) * factor),
        min(width, (right + 1) * factor),
        min(height, (bottom + 1) * factor),
    )
    grey = source.read(fine, region)
    x = 1.0 - grey if found.paper else grey
    background = found.background
    if found.grid is not None:
        grid, cell = found.grid
        # Centres of the fine pixels, in pixels of the small picture the map was made on.
        rows = (region[1] + (np.arange(x.shape[0], dtype=np.float32) + 0.5) * fine) / factor
        cols = (region[0] + (np.arange(x.shape[1], dtype=np.float32) + 0.5) * fine) / factor
        background = expand_region(grid, cell, rows, cols)
    ink = x - background
    if found.paper:
        ink *= 1.0 / np.maximum(1.0 - background, 0.05)
    low = found.levels[0]
    strong = ink[ink > found.mid]
    high = max(median(strong), low + 1e-3) if strong.size else found.levels[1]
    levels = (low, high)
    return ink, levels, ink_box(ink, levels)


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
