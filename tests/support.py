"""Helpers for the serving tests: checkpoints, archives, configurations, the CLI, images as bytes, offline answers."""

import copy
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.decode import decode_image
from handler.preprocess import to_model_input
from model import MnistCNN
from model.inference import for_inference, load_for_inference
from scripts.serving.archive import build_archive
from scripts.serving.config import API_NAMES, configure, free_ports
from scripts.serving.paths import ROOT


def untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised MnistCNN state_dict: enough for tests that need no accuracy."""
    torch.manual_seed(seed)
    torch.save(MnistCNN().state_dict(), path)
    return path


def unpacked_archive(checkpoint: Path, workdir: Path) -> Path:
    """Build the real .mar and unzip it: the directory a TorchServe worker runs the handler in."""
    mar = build_archive(checkpoint, workdir / "store")
    model_dir = workdir / "model_dir"
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(model_dir)
    return model_dir


# `python -m scripts.serving start`'s port options, one per API (scripts.serving.config.API_NAMES).
PORT_OPTIONS = tuple(f"--{name.replace('_', '-')}-port" for name in API_NAMES)


def server_config(store: Path, dest: Path, workers: int = 1, ports: dict[str, int] | None = None) -> Path:
    """The project's configuration on free loopback ports (or ``ports``), serving the archive in ``store``."""
    configuration = configure(ports=ports or free_ports(), workers=workers, properties={"model_store": str(store)})
    return configuration.write(dest)


def serving_cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m scripts.serving ...`` as the Makefile runs it, from any directory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "scripts.serving", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def mnist_image(pixels: np.ndarray) -> Image.Image:
    """A 28x28 uint8 MNIST array as the PNG a client would send."""
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode="L")


def offline_probabilities(model: torch.nn.Module, images: list[Image.Image]) -> torch.Tensor:
    """What the handler computes for ``images`` as one batch, without any server: ``model`` in its served
    form (``for_inference``, channels-last input), softmax probabilities."""
    served = for_inference(copy.deepcopy(model))
    with torch.inference_mode():
        batch = torch.stack([to_model_input(image) for image in images])
        return torch.softmax(served(batch.to(memory_format=torch.channels_last)), dim=1)


def rounded(probabilities: torch.Tensor) -> list[float]:
    """One image's probabilities as the handler writes them into its JSON answer."""
    return [round(p, 6) for p in probabilities.tolist()]


def served_probabilities(checkpoint: Path, bodies: list[bytes]) -> list[list[float]]:
    """What a TorchServe worker answers for each body sent alone, computed here.

    The worker's decoding, the served model form, a worker's torch threads (one unless OMP_NUM_THREADS
    says otherwise; their number may change the last bits of a sum), a batch of one, probabilities
    rounded as in the JSON answer.
    """
    model = load_for_inference(checkpoint)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        return [rounded(offline_probabilities(model, [decode_image(body)])[0]) for body in bodies]
    finally:
        torch.set_num_threads(threads)
