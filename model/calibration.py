"""Calibrated probabilities and the not-a-digit check: the same numbers offline and served.

``python -m train.calibrate`` fits, on MNIST training images the CNN never saw (``python -m train
--holdout``), a temperature for the softmax and a small "digit or not" classifier on what the
forward pass computes anyway: pooled activations of both conv blocks, the 128 features before the
last layer, the logits, their energy and their distances to the digit classes. It writes them next
to the checkpoint (``mnist_cnn.calibration.pt``); the model archive carries the file. The handler
and the offline evaluation call :func:`load_calibration` and :func:`answer`. Without the file (an
older checkpoint) :func:`answer` is the plain softmax.

Imports only numpy and torch: this file ships inside the model archive (Python 3.9 too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

FORMAT = 3


class Answer(NamedTuple):
    """What the model says about a batch of inputs."""

    probabilities: torch.Tensor  # (N, 10): softmax of logits / temperature
    not_digit_score: torch.Tensor | None  # (N,): higher is less like a handwritten digit; None without a check
    is_digit: torch.Tensor | None  # (N,) bool: score at or below the fitted threshold; None without a check


def forward_with_features(model: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(inputs)`` layer by layer (the same operations, so the same logits) and (N, 320) features.

    The features: the max and the sum of each channel after each conv block (64 + 128), then the
    128 inputs of the last layer. Works on :class:`model.cnn.MnistCNN` and on its
    :func:`model.inference.for_inference` form.
    """
    h, features = inputs, []
    for layer in model.features:
        h = layer(h)
        if isinstance(layer, nn.MaxPool2d):
            features += [h.amax((2, 3)), h.sum((2, 3))]
    *head, last = model.classifier
    for layer in head:
        h = layer(h)
    return last(h), torch.cat([*features, h], 1)


# The check itself runs in numpy: its dozen operations on a few hundred numbers each cost numpy
# a microsecond or two, torch several.


def class_distances(features: np.ndarray, whitening: np.ndarray, centres: np.ndarray, starts: np.ndarray):
    """(N, layers): per layer, the Mahalanobis distance of the features to the nearest class mean.

    ``whitening`` (D, D) is block-diagonal, one block per layer (its features begin at ``starts``):
    a Cholesky factor of the inverse of the within-class covariance the classes share. ``centres``
    (K, D) are the class means times it, so distances in whitened space are Euclidean.
    """
    difference = (features @ whitening)[:, None, :] - centres
    squares = np.add.reduceat(difference * difference, starts, axis=2)  # (N, K, layers)
    return np.sqrt(squares.min(1))


def describe(features: np.ndarray, logits: np.ndarray, whitening, centres, starts) -> np.ndarray:
    """(N, columns): the features, the logits, their log-sum-exp (the energy) and maximum, the class distances."""
    energy = np.log(np.exp(logits.astype(np.float64)).sum(1, keepdims=True))  # float64: no overflow below 709
    distances = class_distances(features, whitening, centres, starts)
    return np.concatenate([features, logits, energy, logits.max(1, keepdims=True), distances], 1, dtype=np.float32)


@dataclass(frozen=True)
class DigitCheck:
    """A one-hidden-layer classifier of "not a digit" on :func:`describe`'s columns, and its threshold."""

    whitening: np.ndarray  # (D, D)
    centres: np.ndarray  # (10, D)
    starts: np.ndarray  # (layers,) where each layer's features begin
    hidden_weight: np.ndarray  # (columns, H), the columns' standardisation folded in
    hidden_bias: np.ndarray  # (H,)
    output_weight: np.ndarray  # (H,)
    output_bias: float
    threshold: float

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> np.ndarray:
        """(N,) the classifier's logit for "not a digit" (CPU tensors from :func:`forward_with_features`)."""
        columns = describe(features.numpy(), logits.numpy(), self.whitening, self.centres, self.starts)
        hidden = np.maximum(columns @ self.hidden_weight + self.hidden_bias, 0.0)
        return hidden @ self.output_weight + self.output_bias


@dataclass(frozen=True)
class Calibration:
    temperature: float
    check: DigitCheck | None


def answer(model: nn.Module, inputs: torch.Tensor, calibration: Calibration | None) -> Answer:
    """Probabilities (tempered when calibrated) and, with a check, the not-a-digit score and flag."""
    if calibration is None:
        return Answer(torch.softmax(model(inputs), 1), None, None)
    logits, features = forward_with_features(model, inputs)
    probabilities = torch.softmax(logits / calibration.temperature, 1)
    if calibration.check is None:
        return Answer(probabilities, None, None)
    score = calibration.check.score(features.cpu(), logits.cpu())
    return Answer(probabilities, torch.from_numpy(score), torch.from_numpy(score <= calibration.check.threshold))


def calibration_path(checkpoint: str | Path) -> Path:
    """Where the calibration of ``checkpoint`` lives: ``mnist_cnn.pth`` -> ``mnist_cnn.calibration.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.calibration.pt")


def save_calibration(path: str | Path, calibration: Calibration, info: dict) -> None:
    """Write ``calibration`` and a description of its fit (``info``: plain numbers and strings)."""
    check = None
    if calibration.check is not None:
        check = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in vars(calibration.check).items()}
    torch.save({"format": FORMAT, "temperature": calibration.temperature, "check": check, "info": info}, path)


def load_calibration(path: str | Path) -> Calibration | None:
    """The calibration in ``path``; None when there is no such file. A damaged file raises ValueError."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != FORMAT:
            raise ValueError(f"format {saved.get('format')!r}, expected {FORMAT}")
        check = saved["check"]
        if check is not None:
            check = DigitCheck(**{k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in check.items()})
        return Calibration(float(saved["temperature"]), check)
    except Exception as err:  # torch.load and the dataclass raise many types for a bad file
        raise ValueError(f"{path} is not a calibration file of this version: {err}") from None


def read_info(path: str | Path) -> dict:
    """The description of the fit stored with a calibration."""
    return torch.load(path, map_location="cpu", weights_only=True).get("info", {})
