"""The pieces the user-style renderers build their pictures from: strokes, warps, placement, light, shading.

Each takes and returns ink coverage in [0, 1] (``alpha``) or a picture; the randomness comes from the
caller's generator, so the same seed gives the same picture.
"""

import io
import math
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageFilter

# 4,096 quantiles of the standard normal: indexing them with random 12-bit numbers draws
# Gaussian noise several times faster than numpy's exact sampler, on pictures of a megapixel.
_NORMAL = np.array([NormalDist().inv_cdf((n + 0.5) / 4096) for n in range(4096)], dtype=np.float32)


def stroke_alpha(digit: np.ndarray, side: int, threshold: float, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage in [0, 1] of ``digit`` drawn at side x side pixels.

    Bicubic upsampling gives smooth outlines; thresholding it at ``threshold``
    (0.2 thick ... 0.7 thin) sets the stroke width; a soft edge of about a pixel
    keeps it anti-aliased like a real pen or canvas line.
    """
    up = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    up = up.filter(ImageFilter.GaussianBlur(side / 140))  # rounds the 28-px staircase
    v = np.asarray(up, dtype=np.float32) / 255.0
    edge = 0.06 + 0.04 * rng.random()
    return np.clip((v - threshold) / edge + 0.5, 0.0, 1.0)


def warp(alpha: np.ndarray, angle: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate by ``angle`` degrees and move each corner by up to ``jitter`` of the side (perspective).

    One resampling: the perspective's map composed with the rotation's, which turns the picture
    about its centre into a canvas just large enough (``Image.rotate(expand=True)``'s).
    """
    image = Image.fromarray((alpha * 255).astype(np.uint8))
    (w0, h0), turn = image.size, -math.radians(angle)
    cos, sin = round(math.cos(turn), 15), round(math.sin(turn), 15)
    xs = [cos * (x - w0 / 2) + sin * (y - h0 / 2) for x, y in ((0, 0), (w0, 0), (w0, h0), (0, h0))]
    ys = [-sin * (x - w0 / 2) + cos * (y - h0 / 2) for x, y in ((0, 0), (w0, 0), (w0, h0), (0, h0))]
    w, h = math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))
    # Output pixel of the rotated canvas -> input pixel.
    rotation = np.array(
        [
            [cos, sin, w0 / 2 - cos * w / 2 - sin * h / 2],
            [-sin, cos, h0 / 2 + sin * w / 2 - cos * h / 2],
            [0.0, 0.0, 1.0],
        ]
    )
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    moved = corners + rng.uniform(-jitter, jitter, size=(4, 2)) * (w, h)
    combined = rotation @ np.array([*perspective(corners, moved), 1.0]).reshape(3, 3)
    coefficients = (combined / combined[2, 2]).ravel()[:8].tolist()
    image = image.transform((w, h), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


def perspective(dst: np.ndarray, src: np.ndarray) -> list[float]:
    """Coefficients mapping output points ``dst`` to input points ``src`` (Pillow's PERSPECTIVE)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows), np.array(rhs)).tolist()


def place(alpha: np.ndarray, height: int, width: int, rng: np.random.Generator, margin: float = 0.03) -> np.ndarray:
    """Paste ``alpha`` at a random spot of a height x width field, keeping a small margin."""
    field = np.zeros((height, width), dtype=np.float32)
    ah, aw = alpha.shape
    if ah > height or aw > width:  # never happens with the sizes below; keeps the contract simple
        alpha = alpha[:height, :width]
        ah, aw = alpha.shape
    m_y, m_x = int(margin * height), int(margin * width)
    top = rng.integers(min(m_y, height - ah), max(height - ah - m_y, min(m_y, height - ah)) + 1)
    left = rng.integers(min(m_x, width - aw), max(width - aw - m_x, min(m_x, width - aw)) + 1)
    field[top : top + ah, left : left + aw] = alpha
    return field


def blurred(ink: np.ndarray, radius: float) -> np.ndarray:
    """Pillow's Gaussian blur of ``radius`` of a uint8 picture that is zero but around its ink, as float32.

    Only the ink's box and a margin wider than the blur reaches are blurred: Pillow blurs in three
    box passes, each reaching at most ``int(radius) + 1`` pixels, and extends edges, so the rest
    stays zero, exactly as when the whole picture is blurred, at a fraction of the cost.
    """
    out = np.zeros(ink.shape, dtype=np.float32)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return out
    pad = 3 * (int(radius) + 2)
    top, bottom = max(0, int(rows[0]) - pad), min(ink.shape[0], int(rows[-1]) + 1 + pad)
    left, right = max(0, int(cols[0]) - pad), min(ink.shape[1], int(cols[-1]) + 1 + pad)
    region = Image.fromarray(np.ascontiguousarray(ink[top:bottom, left:right]))
    out[top:bottom, left:right] = np.asarray(region.filter(ImageFilter.GaussianBlur(radius)))
    return out


def lighting(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Illumination in (0, 1]: a linear gradient, a vignette and sometimes a soft shadow.

    Computed on every fourth pixel and enlarged bilinearly: the light has no detail that finer.
    """
    rows, cols = -(-height // 4), -(-width // 4)
    # The full picture's row and column indices at the small one's pixel centres.
    y = (((np.arange(rows, dtype=np.float32) + 0.5) * (height / rows) - 0.5) / height - 0.5)[:, None]
    x = (((np.arange(cols, dtype=np.float32) + 0.5) * (width / cols) - 0.5) / width - 0.5)[None, :]
    theta = rng.uniform(0, 2 * np.pi)
    light = 1.0 - rng.uniform(0.05, 0.3) * (0.5 + x * np.cos(theta) + y * np.sin(theta))
    light *= 1.0 - rng.uniform(0.05, 0.25) * (x**2 + y**2) * 2
    if rng.random() < 0.6:  # the phone's or the hand's shadow: a half-plane with a soft edge
        phi = rng.uniform(0, 2 * np.pi)
        d = x * np.cos(phi) + y * np.sin(phi) - rng.uniform(-0.4, 0.4)
        softness = rng.uniform(0.03, 0.12)
        light *= 1.0 - rng.uniform(0.15, 0.4) / (1.0 + np.exp(-d / softness))
    return np.asarray(Image.fromarray(light.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR))


def noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Float32 Gaussian noise of standard deviation ``sigma`` (quantised to 4,096 levels)."""
    count = int(np.prod(shape))
    index = np.frombuffer(rng.bytes(2 * count), dtype=np.uint16) >> 4
    return (_NORMAL * np.float32(sigma))[index].reshape(shape)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def ink_box(alpha: np.ndarray, level: float = 0.5) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels of ``alpha`` above ``level``, stop indices exclusive."""
    rows, cols = np.flatnonzero((alpha > level).any(axis=1)), np.flatnonzero((alpha > level).any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def thick_alpha(digit: np.ndarray, box_side: int, rng: np.random.Generator, grow: tuple[float, float]) -> np.ndarray:
    """``digit`` drawn so its ink box is about ``box_side`` pixels, each stroke edge pushed out by
    ``grow`` (a range, in pixels of a 20-pixel box: 0.5 makes an MNIST stroke about half again as wide)."""
    side = max(28, round(box_side * 28 / 20))
    alpha = stroke_alpha(digit, side, rng.uniform(0.25, 0.45), rng)
    radius = round(rng.uniform(*grow) * box_side / 20)
    if radius > 0:
        alpha = np.asarray(Image.fromarray(alpha).filter(ImageFilter.MaxFilter(2 * radius + 1)))
    return alpha


def frame(alpha: np.ndarray, margins: tuple[int, int, int, int]) -> np.ndarray:
    """The ink box of ``alpha`` widened by (top, bottom, left, right) pixels; negative ones cut into the ink."""
    top, bottom, left, right = ink_box(alpha)
    m_top, m_bottom, m_left, m_right = margins
    padded = np.pad(alpha, max(0, *margins))
    pad = max(0, *margins)
    return padded[pad + top - m_top : pad + bottom + m_bottom, pad + left - m_left : pad + right + m_right]


def shade(coverage: np.ndarray, dark_on_light: bool, rng: np.random.Generator) -> Image.Image:
    """Ink coverage as an 8-bit grey picture: dark ink on light paper or light ink on a dark ground."""
    ground, ink = rng.uniform(0.8, 1.0), rng.uniform(0.0, 0.25)
    if not dark_on_light:
        ground, ink = 1.0 - ground, 1.0 - ink
    grey = ground + (ink - ground) * coverage
    return Image.fromarray(np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8))


def fit(alpha: np.ndarray, side: int) -> np.ndarray:
    """Shrink ``alpha`` (keeping its aspect) when it is larger than side x side."""
    h, w = alpha.shape
    if max(h, w) <= side:
        return alpha
    scale = side / max(h, w)
    image = Image.fromarray(alpha).resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.BOX)
    return np.asarray(image)
