import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from train.data import IDX_NAMES, DataError, load_mnist

pytestmark = pytest.mark.unit

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_local_copy_yields_the_full_labelled_splits(mnist):
    train, test = mnist
    assert train.images.shape == (60_000, 28, 28) and test.images.shape == (10_000, 28, 28)
    assert train.labels.bincount().tolist() == TRAIN_COUNTS
    assert test.labels.bincount().tolist() == TEST_COUNTS
    # The first digits of each file are famous: a 5 and a 7.
    assert (train.labels[0].item(), test.labels[0].item()) == (5, 7)


def test_raw_uncompressed_copy_is_accepted(mnist_dir, tmp_path):
    raw = tmp_path / "raw-copy"
    raw.mkdir()
    for gz in mnist_dir.glob("*.gz"):
        with gzip.open(gz) as fin, open(raw / gz.stem, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    train, test = load_mnist(raw, tmp_path / "root")
    assert (len(train), len(test)) == (60_000, 10_000)


def test_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere", tmp_path / "root")


def test_incomplete_copy_names_the_missing_file(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, tmp_path / "root")


def test_damaged_copy_fails_its_checksum(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(src / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + bytes(1000))
    with pytest.raises(DataError, match="checksum"):
        load_mnist(src, tmp_path / "root")
    assert not list((tmp_path / "root").rglob("*.part"))


def test_cli_prints_one_line_and_fails(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "train.data", "--data-dir", str(tmp_path / "nowhere"), "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_the_idx_names_are_torchvisions():
    """The file names are spelt out so that importing the data modules does not import torchvision."""
    from torchvision.datasets import MNIST, FashionMNIST

    from train import fashion

    assert IDX_NAMES == [Path(name).stem for name, _ in MNIST.resources]
    assert fashion.IDX_NAMES == [Path(name).stem for name, _ in FashionMNIST.resources]
