"""The not-a-digit flag through a real TorchServe, with a quickly trained checkpoint calibrated by the project's CLI."""

import subprocess
import sys

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from handler.mnist_handler import NOT_A_DIGIT_NOTE
from handler.preprocess import PreprocessError, to_model_input
from model.calibration import answer, calibration_path, load_calibration
from model.inference import load_for_inference
from scripts.serving.paths import ROOT
from scripts.serving.process import serve_checkpoint
from tests.support import encode, mnist_image
from train import fashion

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def run(command: list[str], what: str) -> None:
    result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def calibrated(mnist_dir, tmp_path_factory):
    """A checkpoint of one epoch on 5,000 digits and a small calibration on the digits it never saw.

    AdamW at batch 128 (a few seconds; ~94% on MNIST): the default SGD recipe is tuned for 10 full
    epochs. ``--subset 5000`` takes the first digits, the default ``--holdout 5000`` keeps the last
    out, so the calibration's held-out digits are unseen.
    """
    if fashion.try_load_fashion("test")[0] is None:
        pytest.skip(f"needs Fashion-MNIST: {fashion.INSTALL_HINT}")
    workdir = tmp_path_factory.mktemp("calibrated")
    checkpoint, reports = workdir / "quick.pth", workdir / "reports"
    data = ["--data-dir", str(mnist_dir), "--data-root", str(workdir / "data")]
    train = ["-m", "train", "--epochs", "1", "--subset", "5000", "--seed", "0", "--device", "cpu"]
    train += ["--optimizer", "adamw", "--lr", "3e-3", "--batch-size", "128"]
    run([*train, *data, "--checkpoint", str(checkpoint), "--reports-dir", str(reports)], "python -m train")
    calibrate = ["-m", "train.calibrate", "--checkpoint", str(checkpoint), "--reports-dir", str(reports)]
    calibrate += [
        "--fit-digits",
        "4000",
        "--fit-per-style",
        "12",
        "--fit-blurred",
        "24",
        "--photo-crops",  # garments are what this test sends: Fashion-MNIST keeps the non-digit side
        "0",
        "--renders",
        "120",
        "--per-style",
        "20",
        "--fashion",
        "8000",
    ]
    run([*calibrate, *data], "python -m train.calibrate")
    assert calibration_path(checkpoint).is_file()
    return checkpoint


@pytest.fixture(scope="module")
def server(calibrated, tmp_path_factory):
    server = serve_checkpoint(calibrated, tmp_path_factory.mktemp("torchserve"), workers=1)
    yield server
    server.stop()


def send(server, pictures: list[Image.Image]) -> list[dict]:
    headers = {**server.auth("inference"), "Content-Type": "image/png"}
    answers = []
    for image in pictures:
        response = requests.post(server.predictions_url, data=encode(image), headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def test_served_flags_garments_not_digits_as_offline(server, calibrated, mnist):
    digits = [mnist_image(a) for a in mnist[1].images[:40].numpy()]
    garments = []
    for image in (Image.fromarray(a, mode="L") for a in fashion.load_fashion("test")[:200]):
        try:  # the preprocessing may refuse a garment as blank (400): not what this test is about
            to_model_input(image)
            garments.append(image)
        except PreprocessError:
            pass
    garments = garments[:40]
    assert len(garments) == 40
    served_digits, served_garments = send(server, digits), send(server, garments)
    assert all(a["is_digit"] is True and "note" not in a for a in served_digits)
    flagged = [a["is_digit"] is False for a in served_garments]
    assert sum(flagged) >= 32, f"only {sum(flagged)} of 40 garments flagged"
    assert all(a["note"] == NOT_A_DIGIT_NOTE for a in served_garments if a["is_digit"] is False)
    # Identical offline: the same shared function on the same checkpoint and calibration.
    model = load_for_inference(calibrated)
    calibration = load_calibration(calibration_path(calibrated))
    with torch.inference_mode():
        offline = answer(model, torch.stack([to_model_input(p) for p in digits + garments]), calibration)
    assert offline.is_digit.tolist() == [a["is_digit"] for a in served_digits + served_garments]
    served_probabilities = [a["probabilities"] for a in served_digits + served_garments]
    assert np.allclose(served_probabilities, offline.probabilities.numpy(), atol=1e-5)
