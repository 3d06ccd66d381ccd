"""Helpers for the serving tests: checkpoints, archives, a private TorchServe, images as bytes."""

import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.preprocess import to_model_input
from model import MnistCNN
from scripts.serving import ROOT, Server, build_archive, free_ports, render_config, start


def untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised MnistCNN state_dict: enough for tests that need no accuracy."""
    torch.manual_seed(seed)
    torch.save(MnistCNN().state_dict(), path)
    return path


def quick_checkpoint(path: Path, mnist_dir: Path, reports_dir: Path, subset: int = 5000) -> Path:
    """One epoch on 5,000 real digits with the project's training CLI (a few seconds; ~94% on MNIST).

    AdamW at batch 128: the default SGD recipe is tuned for 10 full epochs and is still at
    chance level after 20 steps. A larger ``subset`` buys accuracy for time.
    """
    command = [sys.executable, "-m", "train", "--epochs", "1", "--subset", str(subset), "--seed", "0"]
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


def start_test_server(checkpoint: Path, workdir: Path, workers: int = 1, timeout: float = 180.0) -> Server:
    """The project's config.properties on free loopback ports with a private model store and logs."""
    build_archive(checkpoint, workdir / "store")
    inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
    config = render_config(
        ROOT / "config.properties",
        workdir / "config.properties",
        {
            "inference_address": f"http://127.0.0.1:{inference}",
            "management_address": f"http://127.0.0.1:{management}",
            "metrics_address": f"http://127.0.0.1:{metrics}",
            "grpc_inference_port": str(grpc_inference),
            "grpc_management_port": str(grpc_management),
            "model_store": str(workdir / "store"),
            "metrics_config": str(ROOT / "handler" / "metrics.yaml"),
            "default_workers_per_model": str(workers),
        },
    )
    text = config.read_text()
    for key in ("minWorkers", "maxWorkers"):
        assert f'"{key}": ' in text, f"config.properties has no {key} in its models block"
        text = re.sub(rf'"{key}": \d+', f'"{key}": {workers}', text)
    config.write_text(text)
    return start(config, workdir / "logs", cwd=workdir, timeout=timeout)


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


def load_model(checkpoint: Path) -> torch.nn.Module:
    model = MnistCNN()
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return model.eval()
