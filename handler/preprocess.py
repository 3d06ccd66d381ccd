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

Imports only numpy, torch and Pillow: this file ships inside the model archive.
"""

import functools
import math

import numpy as np
import torch
from PIL import Image

from model import MNIST_MEAN, MNIST_STD

SIDE = 28  # model input side
FIT = 20  # the digit's box is scaled to fit FIT x FIT, as in MNIST
CENTRE = 14.0  # MNIST digits' mean centre of mass (row and column index)
ANALYSIS_SIDE = 256  # larger pictures are box-reduced to about this before analysis
MIN_CONTRAST = 0.12  # weakest ink/background contrast accepted as a digit (fraction of the range)
HEAVY_INK = 0.025  # contrast x fraction of pixels above mid-way: much clear ink, not only shadows or noise
NOISE_MARGIN = 8.0  # the ink must also stand this many noise sigmas above the background
MIN_DIGIT = 0.04  # a digit's box spans at least this fraction of the picture's longer side
SMALL_SIDE = 48  # below this the background is one level (the border's), not a map
THIN_STROKE = 1.5  # strokes thinner than this at the 20x20 scale (px) are grown ...
THIN_TARGET = 1.8  # ... to about this; MNIST's median is 2.0, its 10th percentile 1.5
THICK_STROKE = 3.5  # strokes wider than this (MNIST's 98th percentile) are eroded ...
THICK_TARGET = 3.0  # ... to about this, its 95th: the model has seen few thicker
POLARITY_MARGIN = 0.5  # the border decides the polarity when its level is this far (of the range) from mid-way
FILLED = 0.6  # a digit box spanning this fraction of the picture's height or width fills the frame
FLAT_QUANTILE = 0.1  # a frame-filling digit's background level: this quantile of the picture
RESAMPLE = Image.Resampling.BILINEAR  # anti-aliased when shrinking (Pillow widens the filter)

_BORDER_PIXELS = SIDE * SIDE - (SIDE - 4) ** 2
_INDEX = np.arange(SIDE, dtype=np.float32)
# ITU-R 601-2 luma, as Pillow's "L" conversion.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class PreprocessError(ValueError):
    """The picture cannot become a digit; the message is for the client."""


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Map pixel intensities in [0, 1] (white ink on black) to the model's input scale."""
    return (x - MNIST_MEAN) / MNIST_STD


def to_model_input(image: Image.Image) -> torch.Tensor:
    """Return a (1, 28, 28) float32 tensor for one decoded picture of a digit.

    Raises :class:`PreprocessError` when the picture is empty or holds no ink.
    """
    if image.width == 0 or image.height == 0:
        raise PreprocessError("the image is empty (0 pixels)")
    mnist = _as_mnist_digit(image)
    if mnist is not None:
        return normalize(torch.from_numpy(mnist)).unsqueeze(0)
    grey = _grey(image)
    x, background, paper = _ink_and_background(grey)
    ink, levels = _ink_levels(x, background, paper)
    box = _ink_box(ink, levels)
    if not np.isscalar(background) and _fills_frame(box, ink.shape):
        # Strokes this wide relative to the picture may cover whole tiles of the background map,
        # which then takes them for background and hollows them out. One background level keeps
        # them whole; if it finds no ink or thinner strokes, the map was right (a close-up photo
        # whose shadows only the map removes).
        try:
            flat_ink, flat_levels = _ink_levels(x, _flat_level(x), paper)
            flat_box = _ink_box(flat_ink, flat_levels)
            if _box_stroke_width(flat_ink, flat_levels, flat_box) > _box_stroke_width(ink, levels, box):
                ink, levels, box = flat_ink, flat_levels, flat_box
        except PreprocessError:
            pass
    return normalize(torch.from_numpy(_mnist_layout(ink, levels, box))).unsqueeze(0)


def draft(image: Image.Image) -> None:
    """Let a JPEG not loaded yet decode straight to small greyscale (DCT scaling: several times faster).

    Call it right after ``Image.open`` and before anything that loads the pixels
    (``ImageOps.exif_transpose`` does); :func:`to_model_input` calls it too, and
    it does nothing to other formats or to loaded images.
    """
    if image.format == "JPEG" and image.mode in ("L", "RGB"):
        image.draft("L", (ANALYSIS_SIDE, ANALYSIS_SIDE))


# ---- 1. pixels: any mode to one grey float image ----------------------------------------


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
    cy, cx = x.sum(axis=1) @ _INDEX / mass, x.sum(axis=0) @ _INDEX / mass
    if abs(cy - CENTRE) > 1 or abs(cx - CENTRE) > 1:
        return None
    return x


def _grey(image: Image.Image) -> np.ndarray:
    """A float32 (H, W) image in [0, 1], at most about ANALYSIS_SIDE pixels a side.

    Transparent pixels are composited onto a background that contrasts with
    the opaque ones (white behind dark strokes, black behind light ones).
    """
    draft(image)
    image, scale = _reducible(image)
    factor = math.ceil(max(image.size) / ANALYSIS_SIDE)
    if factor > 1:
        image = image.reduce(factor)
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if mode in ("I", "F"):
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=scale, neginf=0.0)
        if mode == "I" and scale == 255.0 and grey.max() > 255:
            scale = 65535.0
        if mode == "F" and grey.max() <= 1.0:
            scale = 1.0
        return np.clip(grey / scale, 0.0, 1.0)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    if mode == "L":
        return pixels
    # Premultiplied alpha ("La"/"RGBa"): grey = luma_p + (1 - alpha) * background.
    luma_p = pixels[..., 0] if mode == "La" else pixels[..., :3] @ _LUMA
    alpha = pixels[..., -1]
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


# ---- 2. background and polarity --------------------------------------------------------


def _box3(a: np.ndarray) -> np.ndarray:
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


def _median(a: np.ndarray) -> float:
    """``np.median`` of all of ``a``: the same partition without its per-call overhead (4x faster here)."""
    flat = a.ravel()
    k = flat.size // 2
    if flat.size % 2:
        return float(np.partition(flat, k)[k])
    low, high = np.partition(flat, (k - 1, k))[k - 1 : k + 1]
    return (float(low) + float(high)) / 2


def _sample(a: np.ndarray, target: int = 1024) -> np.ndarray:
    """A regular subsample of at most about ``target`` pixels: plenty for a median, much cheaper.

    A median costs a partition of every pixel it is given; on a 120x120 picture five of them
    were half of the preprocessing time.
    """
    step = max(1, math.ceil(math.sqrt(a.size / target)))
    return a[::step, ::step]


def _border(a: np.ndarray) -> np.ndarray:
    """The pixels of a ring about 1/16 of the shorter side wide."""
    w = max(1, min(a.shape) // 16)
    return np.concatenate([a[:w].ravel(), a[-w:].ravel(), a[w:-w, :w].ravel(), a[w:-w, -w:].ravel()])


def _tile_level(x: np.ndarray, quantile: float) -> np.ndarray:
    """A smooth full-size map of the per-tile ``quantile`` of ``x``.

    Tiles are about 1/8 of the longer side, wider than strokes, so a low
    quantile is background; a 3x3 median over tiles gives a tile full of ink
    its neighbours' level while shadow edges survive; bilinear interpolation
    makes the map smooth.
    """
    h, w = x.shape
    step = 2 if x.size > 16384 else 1  # every other pixel is plenty for a quantile, and 4x cheaper
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
    p = np.empty((gh + 2, gw + 2), dtype=x.dtype)  # the tiles' levels, edges repeated
    p[1:-1, 1:-1] = np.partition(tiles, k, axis=-1)[..., k]
    p[0, 1:-1], p[-1, 1:-1] = p[1, 1:-1], p[-2, 1:-1]
    p[:, 0], p[:, -1] = p[:, 1], p[:, -2]
    neighbours = np.empty((9, gh, gw), dtype=x.dtype)
    for n in range(9):
        neighbours[n] = p[n // 3 : n // 3 + gh, n % 3 : n % 3 + gw]
    level = np.partition(neighbours, 4, axis=0)[4]  # the median of nine
    # Tile centres sit at (i + 0.5) * tile * step pixels.
    return _upsample_rows(h, gh, tile * step) @ level @ _upsample_rows(w, gw, tile * step).T


@functools.lru_cache(maxsize=64)
def _upsample_rows(n_out: int, n_in: int, cell: float) -> np.ndarray:
    """The (n_out, n_in) matrix of bilinear interpolation from cells of ``cell`` pixels, edges clamped.

    As Pillow's bilinear upscaling, but two small matrix products replace converting
    to and from an image and the resize of a padded copy (a third of this stage's time).
    Cached (read-only): a client's pictures tend to share a size, and building the matrix
    cost as much as using it.
    """
    src = np.clip((np.arange(n_out, dtype=np.float32) + 0.5) / cell - 0.5, 0.0, n_in - 1)
    first = np.minimum(src.astype(np.intp), max(n_in - 2, 0))
    weights = np.zeros((n_out, n_in), dtype=np.float32)
    rows = np.arange(n_out)
    weights[rows, first] = 1.0 - (src - first)
    if n_in > 1:
        weights[rows, first + 1] = src - first
    weights.flags.writeable = False
    return weights


def _ink_and_background(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | float, bool]:
    """(image with bright ink, its dark background level, whether it was dark ink on light paper).

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
    sums = _box3(grey) if min(grey.shape) >= 3 else 9.0 * grey
    low, high = float(sums.min()), float(sums.max())
    level = 9.0 * _median(_border(sample))  # on the scale of the 3x3 sums
    if abs((level - low) - (high - level)) <= POLARITY_MARGIN * (high - low):
        level = 9.0 * _median(sample)
    paper = level - low > high - level
    x = 1.0 - grey if paper else grey
    if min(x.shape) < SMALL_SIDE:
        return x, _median(_border(x)), paper
    return x, _tile_level(x, 0.25), paper


def _flat_level(x: np.ndarray) -> float:
    """One background level for the whole picture: a low quantile, below thick ink even when it is most of it."""
    sample = _sample(x).ravel()
    k = int(FLAT_QUANTILE * (sample.size - 1))
    return float(np.partition(sample, k)[k])


# ---- 3. noise and contrast --------------------------------------------------------------


def _ink_levels(x: np.ndarray, background: np.ndarray | float, paper: bool) -> tuple[np.ndarray, tuple]:
    """(ink above the background, (low, high)): the levels that :func:`_stretch` maps to 0 and 1.

    Below ``low`` is background and noise; ``high`` is the typical level of stroke cores.
    ``paper``: the picture was dark ink on light paper; dividing by the paper's
    brightness (flat-fielding) keeps ink in a shadow as strong as in the light.
    """
    ink = x - background
    if paper:
        ink /= np.maximum(1.0 - background, 0.05)
    # 3x3 sums, nine times the means: the levels are scaled instead of every pixel.
    sums = _box3(ink) if min(ink.shape) >= 3 else 9.0 * ink
    sample = _sample(sums)
    median = _median(sample)
    noise = 1.4826 * _median(np.abs(sample - median)) / 9.0
    # The background's level: the median, or the border's when lower (a tight crop, mostly ink).
    centre = min(median, _median(_border(sample)))
    inked = sample > 0.5 * (centre + float(sums.max()))
    centre /= 9.0
    peak = float(sums.max()) / 9.0 - centre
    if peak * np.count_nonzero(inked) >= HEAVY_INK * inked.size:
        # Much clear ink (a frame-filling digit) and its blurred edges widen the spread of the
        # pixels, which then says nothing about noise; differences of neighbours still do.
        noise = min(noise, _pixel_noise(ink) / 3.0)  # a 3x3 mean has a third of white noise
    if peak < MIN_CONTRAST or peak < NOISE_MARGIN * noise:
        raise PreprocessError("no digit found in the image: it is blank (no ink stands out from the background)")
    # Noise and faint background fall below `low`; stroke cores (the typical level
    # of clearly inked pixels) reach 1.
    low = centre + max(0.25 * peak, 4.0 * noise)
    strong = ink[sums > 9.0 * (centre + 0.5 * peak)]
    high = max(_median(strong) if strong.size else centre + peak, low + 1e-3)
    return ink, (low, high)


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
    return 1.4826 * _median(np.abs(hh)) / 2.0


def _stretch(ink: np.ndarray, levels: tuple) -> np.ndarray:
    """Ink in [0, 1]: ``levels`` (low, high) mapped to 0 and 1, clipped (a new array)."""
    low, high = levels
    out = ink - low
    out *= 1.0 / (high - low)
    return np.clip(out, 0.0, 1.0, out=out)


# ---- 4. MNIST layout --------------------------------------------------------------------


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


def _thin(crop: np.ndarray, scale: float) -> np.ndarray:
    """Erode strokes that would be wider than THICK_STROKE pixels at the 20x20 scale, never to nothing."""
    width = _stroke_width(crop)
    steps = round((width * scale - THICK_TARGET) / (2 * scale)) if width * scale > THICK_STROKE else 0
    return _morph(crop, min(steps, int((width - 1) // 2), 8), np.minimum)


def _thicken(crop: np.ndarray, scale: float) -> np.ndarray:
    """Grow strokes that would be thinner than THIN_STROKE pixels at the 20x20 scale."""
    width = _stroke_width(crop) * scale
    steps = round((THIN_TARGET - width) / (2 * scale)) if width < THIN_STROKE else 0
    return _morph(crop, min(steps, 8), np.maximum)


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


def _ink_box(ink: np.ndarray, levels: tuple) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the digit, stop indices exclusive; refuses blanks and specks."""
    low, high = levels
    mask = ink > low + 0.25 * (high - low)  # a quarter of the way to stroke cores
    # Isolated pixels (noise that survived the threshold) do not make the box.
    if min(mask.shape) >= 3:
        mask &= _box3(mask.view(np.uint8)) > 2  # at least 3 of the 9 pixels inked
    counts = mask.view(np.uint8)
    rows = counts.sum(axis=1, dtype=np.int32)
    if not rows.any():
        raise PreprocessError("no digit found in the image: it is blank (no ink stands out from the background)")
    top, bottom = _ink_span(rows)
    left, right = _ink_span(counts.sum(axis=0, dtype=np.int32))
    if max(bottom - top, right - left) < max(2, MIN_DIGIT * max(ink.shape)):
        raise PreprocessError("no digit found in the image: only a speck, too small to be a digit")
    return top, bottom, left, right


def _fills_frame(box: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """Whether the digit's box spans most of the picture's height or width (a tight crop, a close-up)."""
    top, bottom, left, right = box
    return bottom - top >= FILLED * shape[0] or right - left >= FILLED * shape[1]


def _box_stroke_width(ink: np.ndarray, levels: tuple, box: tuple[int, int, int, int]) -> float:
    """Mean stroke width in pixels of the ink in ``box``, stretched by ``levels``."""
    top, bottom, left, right = box
    return _stroke_width(_stretch(ink[top:bottom, left:right], levels))


def _mnist_layout(ink: np.ndarray, levels: tuple, box: tuple[int, int, int, int]) -> np.ndarray:
    """Crop to ``box``, stretch ``levels`` to [0, 1], fit in FIT x FIT, centre by mass in SIDE x SIDE."""
    top, bottom, left, right = box
    crop = _stretch(ink[top:bottom, left:right], levels)
    h, w = crop.shape
    scale = FIT / max(h, w)
    crop = _thin(_thicken(crop, scale), scale)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    picture = Image.frombuffer("F", (crop.shape[1], crop.shape[0]), crop, "raw", "F", 0, 1)
    small = np.asarray(picture.resize(size, RESAMPLE))
    # Bilinear weights are positive: the result stays in [0, max], so no clipping is needed.
    small = small / max(float(small.max()), 1e-6)
    mass = float(small.sum())
    cy = float(small.sum(axis=1) @ _INDEX[: small.shape[0]]) / mass
    cx = float(small.sum(axis=0) @ _INDEX[: small.shape[1]]) / mass
    top = min(max(round(CENTRE - cy), 0), SIDE - small.shape[0])
    left = min(max(round(CENTRE - cx), 0), SIDE - small.shape[1])
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out
