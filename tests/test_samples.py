"""The committed example pictures in samples/: small, readable, and regenerable."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handler.decode import decode_image
from handler.preprocess import PreprocessError, to_model_input
from scripts.samples.make import MAX_BYTES, make_samples
from tests.support import served_probabilities

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PICTURES = sorted(p for p in SAMPLES.iterdir() if p.name != "blank.png")


def test_samples_are_few_and_small():
    files = list(SAMPLES.iterdir())
    assert 8 <= len(files) <= 12
    assert all(p.stat().st_size < MAX_BYTES for p in files)
    assert sum(p.stat().st_size for p in files) < 200_000
    assert {p.name.split("_")[0] for p in PICTURES} == set("0123456789")


def test_samples_cover_the_kinds_users_send():
    modes = {Image.open(p).mode for p in PICTURES}
    assert {"L", "RGB", "RGBA", "P", "I;16"} <= modes
    assert any(p.suffix == ".jpg" for p in PICTURES)
    assert any(Image.open(p).size == (28, 28) for p in PICTURES)


@pytest.mark.parametrize("path", PICTURES, ids=lambda p: p.name)
def test_every_sample_becomes_a_model_input(path):
    x = to_model_input(Image.open(path))
    assert x.shape == (1, 28, 28)


def test_blank_sample_is_refused():
    with pytest.raises(PreprocessError, match="blank"):
        to_model_input(decode_image((SAMPLES / "blank.png").read_bytes()))


@pytest.mark.parametrize("path", PICTURES, ids=lambda p: p.name)
def test_a_trained_model_reads_each_sample_as_the_digit_in_its_name(path, mnist_epoch):
    """What the server would answer for the file, computed here with a model trained on MNIST."""
    [probabilities] = served_probabilities(mnist_epoch.checkpoint, [path.read_bytes()])
    assert int(np.argmax(probabilities)) == int(path.name.split("_")[0]), probabilities


def test_samples_regenerate_from_mnist(mnist, tmp_path):
    _, test = mnist
    written = make_samples(test.images.numpy(), test.labels.numpy(), tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in SAMPLES.iterdir())
    for path in written:
        new, old = (
            np.asarray(Image.open(path), dtype=np.float32),
            np.asarray(Image.open(SAMPLES / path.name), np.float32),
        )
        assert new.shape == old.shape
        # PNGs are lossless; a JPEG encoder of another version may differ in the last bits.
        assert np.abs(new - old).mean() <= (2.0 if path.suffix == ".jpg" else 0.0), path.name
