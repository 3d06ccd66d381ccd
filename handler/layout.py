"""The MNIST layout (step 4 of :mod:`handler.preprocess`'s recipe): crop to the ink, strokes made
MNIST-thick, the box fitted in 20x20 keeping its aspect, pasted in 28x28 centred by mass."""

from __future__ import annotations

import numpy as np
from PIL import Image

from handler.ink import PreprocessError, box3, stretch

SIDE = 28  # model input side
FIT = 20  # the digit's box is scaled to fit FIT x FIT, as in MNIST
CENTRE = 14.0  # MNIST digits' mean centre of mass (row and column index)
MIN_DIGIT = 0.04  # a digit's box spans at least this fraction of the picture's longer side
THIN_STROKE = 1.5  # strokes thinner than this at the 20x20 scale (px) are grown ...
THIN_TARGET = 1.8  # ... to about this; MNIST's median is 2.0, its 10th percentile 1.5
THICK_STROKE = 3.5  # strokes wider than this (MNIST's 98th percentile) are eroded ...
THICK_TARGET = 3.0  # ... to about this, its 95th: the model has seen few thicker
FILLED = 0.6  # a digit box spanning this fraction of the picture's height or width fills the frame
RESAMPLE = Image.Resampling.BILINEAR  # anti-aliased when shrinking (Pillow widens the filter)
INDEX = np.arange(SIDE, dtype=np.float32)


def _ink_span(profile: np.ndarray) -> tuple[int, int]:
    """[start, stop) of the inked runs of a 1-D profile, ignoring small runs cut off by gaps."""
    nonzero = np.flatnonzero(profile)
    if nonzero[-1] - nonzero[0] + 1 == nonzero.size:  # one run, the usual case
        return int(nonzero[0]), int(nonzero[-1]) + 1
    inked = np.zeros(profile.size + 2, dtype=bool)
    inked[1:-1] = profile > 0
    edges = np.flatnonzero(inked[1:] != inked[:-1])
    starts, stops = edges[0::2], edges[1::2]
    mass = np.add.reduceat(profile, starts) if len(starts) else np.zeros(0)
    keep = (mass >= 0.05 * mass.sum()) | (mass == mass.max())
    return int(starts[keep].min()), int(stops[keep].max())


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the inked area over its outline length."""
    b = ink > 0.5
    outline = np.count_nonzero(b[1:] != b[:-1]) + np.count_nonzero(b[:, 1:] != b[:, :-1])
    return 2.0 * np.count_nonzero(b) / max(outline, 1)


def _mnist_strokes(crop: np.ndarray, scale: float) -> np.ndarray:
    """Grow strokes thinner than THIN_STROKE pixels at the 20x20 scale, erode those wider than THICK_STROKE
    (never to nothing): the model saw few outside that range."""
    width = _stroke_width(crop)
    if width * scale < THIN_STROKE:
        return _morph(crop, min(round((THIN_TARGET - width * scale) / (2 * scale)), 8), np.maximum)
    if width * scale > THICK_STROKE:
        steps = round((width * scale - THICK_TARGET) / (2 * scale))
        return _morph(crop, min(steps, int((width - 1) // 2), 8), np.minimum)
    return crop


def _morph(crop: np.ndarray, steps: int, pick) -> np.ndarray:
    """``steps`` rounds of each pixel taking ``pick`` (np.maximum grows, np.minimum erodes) of itself and its
    4 neighbours."""
    for _ in range(steps):
        out = crop.copy()
        pick(out[1:], crop[:-1], out=out[1:])
        pick(out[:-1], crop[1:], out=out[:-1])
        pick(out[:, 1:], crop[:, :-1], out=out[:, 1:])
        pick(out[:, :-1], crop[:, 1:], out=out[:, :-1])
        crop = out
    return crop


def ink_box(ink: np.ndarray, levels: tuple) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the digit, stop indices exclusive; refuses blanks and specks."""
    low, high = levels
    mask = ink > low + 0.25 * (high - low)  # a quarter of the way to stroke cores
    # Isolated pixels (noise that survived the threshold) do not make the box.
    if min(mask.shape) >= 3:
        mask &= box3(mask.view(np.uint8)) > 2  # at least 3 of the 9 pixels inked
    counts = mask.view(np.uint8)
    rows = counts.sum(axis=1, dtype=np.int32)
    if not rows.any():
        raise PreprocessError("no digit found in the image: it is blank (no ink stands out from the background)")
    top, bottom = _ink_span(rows)
    left, right = _ink_span(counts.sum(axis=0, dtype=np.int32))
    if max(bottom - top, right - left) < max(2, MIN_DIGIT * max(ink.shape)):
        raise PreprocessError("no digit found in the image: only a speck, too small to be a digit")
    return top, bottom, left, right


def fills_frame(box: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """Whether the digit's box spans most of the picture's height or width (a tight crop, a close-up)."""
    top, bottom, left, right = box
    return bottom - top >= FILLED * shape[0] or right - left >= FILLED * shape[1]


def box_stroke_width(ink: np.ndarray, levels: tuple, box: tuple[int, int, int, int]) -> float:
    """Mean stroke width in pixels of the ink in ``box``, stretched by ``levels``."""
    top, bottom, left, right = box
    return _stroke_width(stretch(ink[top:bottom, left:right], levels))


def mnist_layout(ink: np.ndarray, levels: tuple, box: tuple[int, int, int, int]) -> np.ndarray:
    """Crop to ``box``, stretch ``levels`` to [0, 1], fit in FIT x FIT, centre by mass in SIDE x SIDE."""
    top, bottom, left, right = box
    crop = stretch(ink[top:bottom, left:right], levels)
    h, w = crop.shape
    scale = FIT / max(h, w)
    crop = _mnist_strokes(crop, scale)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    picture = Image.frombuffer("F", (crop.shape[1], crop.shape[0]), crop, "raw", "F", 0, 1)
    small = np.asarray(picture.resize(size, RESAMPLE))
    # Bilinear weights are positive: the result stays in [0, max], so no clipping is needed.
    small = small / max(float(small.max()), 1e-6)
    mass = float(small.sum())
    if mass <= 0.0:  # faint ink that the reduction to FIT pixels averages away
        raise PreprocessError("no digit found in the image: its ink is too faint to fill a 28x28 digit")
    cy = float(small.sum(axis=1) @ INDEX[: small.shape[0]]) / mass
    cx = float(small.sum(axis=0) @ INDEX[: small.shape[1]]) / mass
    top = min(max(round(CENTRE - cy), 0), SIDE - small.shape[0])
    left = min(max(round(CENTRE - cx), 0), SIDE - small.shape[1])
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out
