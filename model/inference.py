"""The CNN as it answers requests, in one place for the server and the offline evaluation.

TorchServe's handler and ``train.evaluate`` both call :func:`for_inference`, so the served
probabilities and the offline ones are the same floating-point numbers. Every tool that scores
a checkpoint loads it with :func:`load_for_inference`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from model.cnn import MnistCNN


class CheckpointError(ValueError):
    """The checkpoint is missing or is not an MnistCNN state_dict; the message is for the user."""


def load_for_inference(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """An MnistCNN from a plain state_dict file, in its served form (:func:`for_inference`) on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: run `make train` first")
    try:
        model = MnistCNN()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # torch.load/load_state_dict raise many types for a bad file
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is not an MnistCNN state_dict: {first_line}") from None
    return for_inference(model.to(device))


def for_inference(model: nn.Module) -> nn.Module:
    """``model``, changed in place: eval mode, batch norm folded, dropout gone, channels-last.

    Each BatchNorm2d that follows a Conv2d is folded into the convolution's weights and bias,
    and eval-mode Dropout (a no-op) is dropped; oneDNN's convolutions are fastest channels-last
    (docs/performance.md).
    """
    model.eval()
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Sequential):
            setattr(model, name, _folded(child))
    return model.to(memory_format=torch.channels_last)


def _folded(block: nn.Sequential) -> nn.Sequential:
    layers = []
    for layer in block:
        if isinstance(layer, nn.BatchNorm2d) and layers and isinstance(layers[-1], nn.Conv2d):
            layers[-1] = fuse_conv_bn_eval(layers[-1], layer)
        elif not isinstance(layer, nn.Dropout):
            layers.append(layer)
    return nn.Sequential(*layers)
