"""Turn any picture of one digit into the model's input, as MNIST was made.

The one preprocessing module: the TorchServe handler and ``train.evaluate``
both call :func:`to_model_input`, so offline accuracy is served accuracy.
"""

import numpy as np
import torch
from PIL import Image

from model import MNIST_MEAN, MNIST_STD


class PreprocessError(ValueError):
    """The picture cannot become a digit; the message is for the client."""


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Map pixel intensities in [0, 1] (white ink on black) to the model's input scale."""
    return (x - MNIST_MEAN) / MNIST_STD


def to_model_input(image: Image.Image) -> torch.Tensor:
    """Return a (1, 28, 28) float32 tensor for one decoded picture of a digit."""
    # TODO(serving issue): the full recipe for arbitrary pictures; this is the 28x28 path only.
    if image.size != (28, 28):
        raise PreprocessError("only 28x28 images are supported so far")
    pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return normalize(torch.from_numpy(pixels)).unsqueeze(0)
