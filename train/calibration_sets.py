"""The pictures the temperature and the not-a-digit check are fitted on, as model inputs.

Digits: MNIST training digits as they are, rendered in every user style (``train.renderers.user_style``)
and as thick or blurred low-resolution variants; non-digits: Fashion-MNIST's training split. All
of them go through the server's own decoding and preprocessing, so a check fitted again after the
preprocessing changes sees what the server will see.
"""

from collections.abc import Iterable

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from handler.decode import decode_image
from handler.preprocess import PreprocessError, to_model_input
from train.renderers.user_style import STYLES, render_bytes

VARIANT_SIDE = 40  # canvas of the thick and low-resolution variants


def as_inputs(pictures: Iterable[Image.Image], labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 28, 28) model inputs and labels of the pictures the preprocessing accepts (refused ones left out)."""
    inputs, kept = [], []
    for picture, label in zip(pictures, labels, strict=True):
        try:
            inputs.append(to_model_input(picture))
            kept.append(int(label))
        except PreprocessError:
            pass
    return (torch.stack(inputs) if inputs else torch.empty(0, 1, 28, 28)), torch.tensor(kept, dtype=torch.long)


def digits(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """28x28 uint8 pictures (MNIST's or Fashion-MNIST's) as a client would send them."""
    return as_inputs((Image.fromarray(images[i], mode="L") for i in indices), labels[indices])


def non_digits(images: np.ndarray) -> torch.Tensor:
    """Model inputs of 28x28 uint8 pictures of other things (Fashion-MNIST) that the preprocessing accepts."""
    return digits(images, np.zeros(len(images), dtype=np.int64), np.arange(len(images)))[0]


def renders(
    images: np.ndarray, labels: np.ndarray, indices: np.ndarray, seed: int, styles: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each digit of ``indices`` rendered in the next of ``styles`` (default: every user style, in turn).

    The files are decoded as the server decodes them.
    """
    styles = styles or list(STYLES)
    pictures = (
        decode_image(render_bytes(images[i], styles[n % len(styles)], seed * 1_000_003 + int(i))[0])
        for n, i in enumerate(indices)
    )
    return as_inputs(pictures, labels[indices])


def variant(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """``digit`` with thick strokes, or shrunk to 8-16 px and blurred back up; either polarity."""
    image = Image.fromarray(digit, mode="L")
    image = image.crop(image.getbbox())
    side = VARIANT_SIDE - 8
    if rng.random() < 0.5:
        scale = 1.25 * side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        image = image.filter(ImageFilter.MaxFilter(int(rng.choice([3, 5]))))
        image.thumbnail((side, side), Image.Resampling.BILINEAR)
    else:
        low = int(rng.choice([8, 12, 16]))
        image = image.resize((low, low), Image.Resampling.BOX).resize((side, side), Image.Resampling.BICUBIC)
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    canvas = Image.new("L", (VARIANT_SIDE, VARIANT_SIDE), 0)
    canvas.paste(image, ((VARIANT_SIDE - image.width) // 2, (VARIANT_SIDE - image.height) // 2))
    return ImageOps.invert(canvas) if rng.random() < 0.5 else canvas


def variants(
    images: np.ndarray, labels: np.ndarray, indices: np.ndarray, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A thick or low-resolution :func:`variant` of each digit of ``indices``."""
    rng = np.random.default_rng(seed)
    return as_inputs((variant(images[i], rng) for i in indices), labels[indices])
