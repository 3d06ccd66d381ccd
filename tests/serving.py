"""Helpers for the serving tests: checkpoints, archives, a private TorchServe, images as bytes."""

import copy
import io
import os
import re
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
from model.inference import for_inference
from scripts.serving import ROOT, Server, build_archive, free_ports, render_config, start


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


# `python -m scripts.serving start`'s port options, in the order of server_config's ``ports``.
PORT_OPTIONS = (
    "--inference-port",
    "--management-port",
    "--metrics-port",
    "--grpc-inference-port",
    "--grpc-management-port",
)


def server_config(store: Path, dest: Path, workers: int = 1, ports: list[int] | None = None) -> Path:
    """The project's config.properties on free loopback ports, serving the archive in ``store``, at ``dest``.

    ``ports``: (inference, management, metrics, gRPC inference, gRPC management); free ones by default.
    """
    inference, management, metrics, grpc_inference, grpc_management = ports or free_ports(5)
    config = render_config(
        ROOT / "config.properties",
        dest,
        {
            "inference_address": f"http://127.0.0.1:{inference}",
            "management_address": f"http://127.0.0.1:{management}",
            "metrics_address": f"http://127.0.0.1:{metrics}",
            "grpc_inference_port": str(grpc_inference),
            "grpc_management_port": str(grpc_management),
            "model_store": str(store),
            "metrics_config": str(ROOT / "handler" / "metrics.yaml"),
            "default_workers_per_model": str(workers),
        },
    )
    text = config.read_text()
    for key in ("minWorkers", "maxWorkers"):
        assert f'"{key}": ' in text, f"config.properties has no {key} in its models block"
        text = re.sub(rf'"{key}": \d+', f'"{key}": {workers}', text)
    config.write_text(text)
    return config


def start_test_server(checkpoint: Path, workdir: Path, workers: int = 1, timeout: float = 180.0) -> Server:
    """TorchServe serving ``checkpoint`` with :func:`server_config`, its logs in ``workdir/logs``."""
    store = build_archive(checkpoint, workdir / "store").parent
    config = server_config(store, workdir / "config.properties", workers)
    return start(config, workdir / "logs", cwd=workdir, timeout=timeout)


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
    model = load_model(checkpoint)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        return [rounded(offline_probabilities(model, [decode_image(body)])[0]) for body in bodies]
    finally:
        torch.set_num_threads(threads)


def load_model(checkpoint: Path) -> torch.nn.Module:
    model = MnistCNN()
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return model.eval()
