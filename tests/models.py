"""Small hand-made models whose answers a test knows in advance (real nn.Modules, no training)."""

import torch
from torch import nn

from model import MNIST_MEAN, MNIST_STD


class TemplateModel(nn.Module):
    """Reads a digit by its nearest template: logits are ``scale`` x the cosine similarity of the input's
    intensities to each template's, for the template's digit, and far below for every other digit.

    ``templates`` maps a digit to a (1, 28, 28) model input (what ``to_model_input`` returns).
    """

    def __init__(self, templates: dict[int, torch.Tensor], scale: float = 50.0):
        super().__init__()
        self.digits = sorted(templates)
        stacked = torch.stack([_unit_intensities(templates[d][None])[0] for d in self.digits])
        self.register_buffer("templates", stacked)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        similarity = _unit_intensities(x) @ self.templates.T
        logits = torch.full((len(x), 10), -self.scale, dtype=x.dtype)
        logits[:, self.digits] = self.scale * similarity
        return logits


class RecordingModel(nn.Module):
    """Another model that notes the batch size of every forward pass it is asked for."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(x))
        return self.inner(x)


class ConstantModel(nn.Module):
    """Answers ``digit`` for every picture."""

    def __init__(self, digit: int):
        super().__init__()
        self.digit = digit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10, dtype=x.dtype)
        logits[:, self.digit] = 10.0
        return logits


def _unit_intensities(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) model inputs as (N, 784) intensity vectors of length 1."""
    flat = (x * MNIST_STD + MNIST_MEAN).reshape(len(x), -1)
    return flat / flat.norm(dim=1, keepdim=True)
