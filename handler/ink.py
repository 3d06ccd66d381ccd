"""Where the ink is in a grey picture: the background (a level map, or one level), which way the
polarity runs, the noise, and how strong the ink must be to count as a digit (step 2-3 of
:mod:`handler.preprocess`'s recipe)."""

from __future__ import annotations

import functools
import math

import numpy as np

MIN_CONTRAST = 0.12  # weakest ink/background contrast accepted as a digit (fraction of the range)
HEAVY_INK = 0.025  # contrast x fraction of pixels above mid-way: much clear ink, not only shadows or noise
NOISE_MARGIN = 8.0  # the ink must also stand this many noise sigmas above the background
SMALL_SIDE = 48  # below this the background is one level (the border's), not a map
POLARITY_MARGIN = 0.5  # the border decides the polarity when its level is this far (of the range) from mid-way
FLAT_QUANTILE = 0.1  # a frame-filling digit's background level: this quantile of the picture


class PreprocessError(ValueError):
    """The picture cannot become a digit; the message is for the client."""


def box3(a: np.ndarray) -> np.ndarray:
    """3x3 sum filter (edges replicated): nine times the mean, one division saved per call.

    Built in place from one padded copy: on pictures of 100-250 pixels a side each array
    numpy allocates costs about as much as the arithmetic.
    """
    p = np.empty((a.shape[0] + 2, a.shape[1] + 2), dtype=a.dtype)  # np.pad's overhead is most of the cost here
    p[1:-1, 1:-1] = a
    p[0, 1:-1], p[-1, 1:-1] = a[0], a[-1]
    p[:, 0], p[:, -1] = p[:, 1], p[:, -2]
    rows = p[:-2] + p[1:-1]
    rows += p[2:]
    out = rows[:, :-2] + rows[:, 1:-1]
    out += rows[:, 2:]
    return out


def median(a: np.ndarray) -> float:
    """``np.median`` of all of ``a``: the same partition without its per-call overhead."""
    flat = a.ravel()
    k = flat.size // 2
    if flat.size % 2:
        return float(np.partition(flat, k)[k])
    low, high = np.partition(flat, (k - 1, k))[k - 1 : k + 1]
    return (float(low) + float(high)) / 2


def _sample(a: np.ndarray, target: int = 1024) -> np.ndarray:
    """A regular subsample of at most about ``target`` pixels: plenty for a median, much cheaper.

    A median costs a partition of every pixel it is given, and the preprocessing takes several.
    """
    step = max(1, math.ceil(math.sqrt(a.size / target)))
    return a[::step, ::step]


def _border(a: np.ndarray) -> np.ndarray:
    """The pixels of a ring about 1/16 of the shorter side wide."""
    w = max(1, min(a.shape) // 16)
    return np.concatenate([a[:w].ravel(), a[-w:].ravel(), a[w:-w, :w].ravel(), a[w:-w, -w:].ravel()])


def tile_grid(x: np.ndarray, quantile: float) -> tuple[np.ndarray, float]:
    """(per-tile ``quantile`` of ``x``, 3x3-median filtered; the tiles' side in pixels of ``x``).

    Tiles are about 1/8 of the longer side, wider than strokes, so a low
    quantile is background; a 3x3 median over tiles gives a tile full of ink
    its neighbours' level while shadow edges survive. :func:`expand` makes it
    a smooth map, of the whole picture or of any region at any resolution.
    """
    step = 2 if x.size > 16384 else 1  # every other row and column: plenty for a quantile, a quarter of the work
    sub = x[::step, ::step]
    sh, sw = sub.shape
    tile = max(8, max(sh, sw) // 8)
    gh, gw = math.ceil(sh / tile), math.ceil(sw / tile)
    # Partial tiles at the bottom and right are completed by mirroring (by repeating the edge
    # when the picture is narrower than a tile).
    padded = np.empty((gh * tile, gw * tile), dtype=x.dtype)
    padded[:sh, :sw] = sub
    mirror = min(sh, sw) > tile
    if gh * tile > sh:
        padded[sh:, :sw] = sub[::-1][1 : 1 + gh * tile - sh] if mirror else sub[-1]
    if gw * tile > sw:
        padded[:, sw:] = padded[:, :sw][:, ::-1][:, 1 : 1 + gw * tile - sw] if mirror else padded[:, sw - 1 : sw]
    tiles = padded.reshape(gh, tile, gw, tile).transpose(0, 2, 1, 3).reshape(gh, gw, tile * tile)
    k = int(quantile * (tile * tile - 1))
    # The tiles' levels, edges repeated, and the median of each 3x3 neighbourhood.
    p = np.empty((gh + 2, gw + 2), dtype=x.dtype)
    p[1:-1, 1:-1] = np.partition(tiles, k, axis=-1)[..., k]
    p[0, 1:-1], p[-1, 1:-1] = p[1, 1:-1], p[-2, 1:-1]
    p[:, 0], p[:, -1] = p[:, 1], p[:, -2]
    # The 3x3 windows as a strided view of p (sliding_window_view's checks cost more than the median).
    neighbours = np.ndarray((gh, gw, 3, 3), p.dtype, p, 0, p.strides * 2).reshape(gh, gw, 9)
    return np.partition(neighbours, 4, axis=-1)[..., 4], float(tile * step)


def expand(grid: np.ndarray, cell: float, shape: tuple[int, int]) -> np.ndarray:
    """The bilinear map of ``grid`` (tile centres at (i + 0.5) * cell pixels) over a ``shape`` picture."""
    return _upsample_rows(shape[0], grid.shape[0], cell) @ grid @ _upsample_rows(shape[1], grid.shape[1], cell).T


def expand_region(grid: np.ndarray, cell: float, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The same map at pixel centres ``rows`` x ``cols`` (coordinates in pixels of the gridded picture)."""
    return _interpolation(rows, grid.shape[0], cell) @ grid @ _interpolation(cols, grid.shape[1], cell).T


@functools.lru_cache(maxsize=64)
def _upsample_rows(n_out: int, n_in: int, cell: float) -> np.ndarray:
    """The (n_out, n_in) matrix of bilinear interpolation from cells of ``cell`` pixels, edges clamped.

    As Pillow's bilinear upscaling, but two small matrix products replace converting
    to and from an image and the resize of a padded copy. Cached (read-only): a client's
    pictures tend to share a size, and building the matrix cost as much as using it.
    """
    weights = _interpolation(np.arange(n_out, dtype=np.float32) + 0.5, n_in, cell)
    weights.flags.writeable = False
    return weights


def _interpolation(centres: np.ndarray, n_in: int, cell: float) -> np.ndarray:
    """Bilinear weights (len(centres), n_in) of the cells (centred at (i + 0.5) * cell) at ``centres``."""
    src = np.clip(centres / cell - 0.5, 0.0, n_in - 1).astype(np.float32)
    first = np.minimum(src.astype(np.intp), max(n_in - 2, 0))
    weights = np.zeros((len(centres), n_in), dtype=np.float32)
    rows = np.arange(len(centres))
    weights[rows, first] = 1.0 - (src - first)
    if n_in > 1:
        weights[rows, first + 1] = src - first
    return weights


def ink_and_background(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | float, bool, np.ndarray, tuple]:
    """(image with bright ink, its dark background level, whether it was dark ink on light paper,
    the image's 3x3 sums, the background's :func:`tile_grid` or None when it is one level).

    The ink is on whichever side (darker or lighter) of the background's level
    strays further from it; a 3x3 mean keeps single noisy pixels from deciding.
    The level is the border's median when that sits clearly at one end of the
    range: a tight crop may be mostly ink, so the median of all pixels can be
    ink. A shadowed border sits in between; then the level is the median of
    all pixels (most of a photo is background, and a shadow is darker than the
    paper, so it only strengthens the right answer). Per-tile medians would
    cancel shadows but mistake thick strokes for background. The background
    under bright ink is then a low per-tile quantile (a high one on paper).
    """
    sample = _sample(grey)
    sums = box3(grey) if min(grey.shape) >= 3 else 9.0 * grey
    low, high = float(sums.min()), float(sums.max())
    level = 9.0 * median(_border(sample))  # on the scale of the 3x3 sums
    if abs((level - low) - (high - level)) <= POLARITY_MARGIN * (high - low):
        level = 9.0 * median(sample)
    paper = level - low > high - level
    if paper:
        x = 1.0 - grey
        sums = np.subtract(9.0, sums, out=sums)  # the sums of 1 - grey, without a second filter
    else:
        x = grey
    if min(x.shape) < SMALL_SIDE:
        return x, median(_border(x)), paper, sums, None
    grid = tile_grid(x, 0.25)
    return x, expand(*grid, x.shape), paper, sums, grid


def uneven(background: np.ndarray, levels: tuple) -> bool:
    """Whether a background map varies by a quarter of the ink's level or more (else it is one level already)."""
    return float(background.max()) - float(background.min()) >= 0.25 * levels[1]


def flat_level(x: np.ndarray) -> float:
    """One background level for the whole picture: a low quantile, below thick ink even when it is most of it."""
    sample = _sample(x).ravel()
    k = int(FLAT_QUANTILE * (sample.size - 1))
    return float(np.partition(sample, k)[k])


def ink_levels(
    x: np.ndarray, background: np.ndarray | float, paper: bool, x_sums: np.ndarray
) -> tuple[np.ndarray, tuple, float]:
    """(ink above the background, (low, high), mid): the levels that :func:`stretch` maps to 0 and 1.

    Below ``low`` is background and noise; ``high`` is the typical level of stroke cores: the
    median of the ink whose 3x3 mean is above ``mid``, half-way to the strongest.
    ``paper``: the picture was dark ink on light paper; dividing by the paper's
    brightness (flat-fielding) keeps ink in a shadow as strong as in the light.
    ``x_sums``: the 3x3 sums of ``x``. The background is one level or a bilinear map, whose
    3x3 sums are nine times itself (but at its kinks, where the difference is negligible):
    the ink's sums follow from ``x``'s without filtering again.
    """
    ink = x - background
    sums = x_sums - 9.0 * background
    if paper:
        gain = 1.0 / np.maximum(1.0 - background, 0.05)
        ink *= gain
        sums *= gain
    sample = _sample(sums)
    typical = median(sample)
    noise = 1.4826 * median(np.abs(sample - typical)) / 9.0
    # The background's level: the median, or the border's when lower (a tight crop, mostly ink).
    centre = min(typical, median(_border(sample))) / 9.0
    peak = float(sums.max()) / 9.0 - centre
    inked = np.count_nonzero(sample > 9.0 * (centre + 0.5 * peak))
    if peak * inked >= HEAVY_INK * sample.size:
        # Much clear ink (a frame-filling digit) and its blurred edges widen the spread of the
        # pixels, which then says nothing about noise; differences of neighbours still do.
        noise = min(noise, _pixel_noise(ink) / 3.0)  # a 3x3 mean has a third of white noise
    if peak < MIN_CONTRAST or peak < NOISE_MARGIN * noise:
        raise PreprocessError("no digit found in the image: it is blank (no ink stands out from the background)")
    # Noise and faint background fall below `low`; stroke cores (the typical level
    # of clearly inked pixels) reach 1.
    low = centre + max(0.25 * peak, 4.0 * noise)
    mid = centre + 0.5 * peak
    strong = ink[sums > 9.0 * mid]
    high = max(median(strong) if strong.size else centre + peak, low + 1e-3)
    return ink, (low, high), mid


def _pixel_noise(a: np.ndarray) -> float:
    """Robust standard deviation of pixel noise, from differences across 2x2 blocks (Donoho's HH).

    Unlike the spread of all the pixels it ignores shading, blur and how much of the
    picture is ink. Infinite when ``a`` is thinner than 2 pixels.
    """
    if min(a.shape) < 2:
        return math.inf
    step = max(1, math.ceil(math.sqrt(a.size / 1024)))
    h, w = a.shape[0] - 1, a.shape[1] - 1
    top, bottom = a[0:h:step], a[1 : h + 1 : step]
    hh = top[:, 0:w:step] - top[:, 1 : w + 1 : step] - bottom[:, 0:w:step] + bottom[:, 1 : w + 1 : step]
    return 1.4826 * median(np.abs(hh)) / 2.0


def stretch(ink: np.ndarray, levels: tuple) -> np.ndarray:
    """Ink in [0, 1]: ``levels`` (low, high) mapped to 0 and 1, clipped (a new array)."""
    low, high = levels
    out = ink - low
    out *= 1.0 / (high - low)
    return np.clip(out, 0.0, 1.0, out=out)
