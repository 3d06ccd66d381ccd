"""Helpers for the serving tests: checkpoints, archives, images as bytes, offline answers."""

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.preprocess import to_model_input
from model import MnistCNN
from scripts.serving.archive import build_archive
from scripts.serving.layout import ROOT


def untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised MnistCNN state_dict: enough for tests that need no accuracy."""
    torch.manual_seed(seed)
    torch.save(MnistCNN().state_dict(), path)
    return path


def quick_checkpoint(path: Path, mnist_dir: Path, reports_dir: Path) -> Path:
    """One epoch on 5,000 real digits with the project's training CLI: quick, and a model that reads digits.

    AdamW at batch 128: the default SGD recipe is tuned for 10 full epochs and is still at
    chance level after 20 steps.
    """
    command = [sys.executable, "-m", "train", "--epochs", "1", "--subset", "5000", "--seed", "0"]
    command += ["--optimizer", "adamw", "--lr", "3e-3", "--batch-size", "128"]
    command += ["--checkpoint", str(path), "--reports-dir", str(reports_dir), "--data-dir", str(mnist_dir)]
    command += ["--data-root", str(reports_dir / "data"), "--device", "cpu"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"python -m train failed:\n{result.stdout}\n{result.stderr}"
    return path


def unpacked_archive(checkpoint: Path, workdir: Path) -> Path:
    """Build the real .mar and unzip it: the directory a TorchServe worker runs the handler in."""
    mar = build_archive(checkpoint, workdir / "store")
    model_dir = workdir / "model_dir"
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(model_dir)
    return model_dir


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def mnist_image(pixels: np.ndarray) -> Image.Image:
    """A 28x28 uint8 MNIST array as the PNG a client would send."""
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L")


def offline_probabilities(model: torch.nn.Module, images: list[Image.Image]) -> torch.Tensor:
    """What evaluation computes for the same pictures, without any server."""
    with torch.inference_mode():
        batch = torch.stack([to_model_input(image) for image in images])
        return torch.softmax(model(batch), dim=1)
