"""Synthetic digit pictures for the preprocessing tests (no MNIST needed)."""

import numpy as np
import torch
from PIL import Image, ImageDraw

from model import MNIST_MEAN, MNIST_STD


def draw_seven(size: tuple[int, int], box: tuple[int, int, int, int], width: int, ink: int, paper: int) -> Image.Image:
    """A "7" with a cross bar drawn in ``box`` (left, top, right, bottom) on an L image."""
    image = Image.new("L", size, paper)
    left, top, right, bottom = box
    draw = ImageDraw.Draw(image)
    draw.line([(left, top), (right, top), (left + (right - left) // 3, bottom)], fill=ink, width=width, joint="curve")
    mid = (top + bottom) // 2
    draw.line([(left + (right - left) // 4, mid), (right - (right - left) // 6, mid)], fill=ink, width=width)
    return image


def big_seven(dark_on_light: bool = True, size: tuple[int, int] = (300, 240)) -> Image.Image:
    """A 7 off-centre in a larger picture, 10-px strokes."""
    ink, paper = (20, 235) if dark_on_light else (235, 20)
    w, h = size
    return draw_seven(size, (w // 10, h // 8, w // 10 + w // 3, h // 8 + h // 2), max(2, w // 30), ink, paper)


def mnist_like_ring() -> Image.Image:
    """A 28x28 light-on-black ring laid out like an MNIST digit (20-px box, centred)."""
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).ellipse((7, 4, 20, 23), outline=255, width=3)
    return image


def pixels(x: torch.Tensor) -> np.ndarray:
    """A model input back to [0, 1] intensities (28, 28)."""
    return (x[0] * MNIST_STD + MNIST_MEAN).numpy()


def centre_of_mass(p: np.ndarray) -> tuple[float, float]:
    index = np.arange(p.shape[0])
    return float(p.sum(1) @ index / p.sum()), float(p.sum(0) @ index / p.sum())


def ink_box(p: np.ndarray, level: float = 0.02) -> tuple[int, int]:
    """(height, width) of the box holding every pixel above ``level``."""
    rows, cols = np.flatnonzero((p > level).any(1)), np.flatnonzero((p > level).any(0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two inputs' intensities (1 = same picture), best over 1-pixel shifts.

    Centring by mass rounds to whole pixels, so the same digit may land one pixel apart.
    """
    pa, pb = pixels(a), pixels(b)
    best = -1.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = np.roll(pb, (dy, dx), axis=(0, 1)).ravel()
            best = max(best, float(pa.ravel() @ shifted / (np.linalg.norm(pa) * np.linalg.norm(shifted))))
    return best
