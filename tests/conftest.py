"""Shared fixtures: the real MNIST copy when there is one."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The local MNIST IDX copy named by MNIST_DIR; skips tests that need it when absent."""
    value = os.environ.get("MNIST_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("needs the full MNIST data set: set MNIST_DIR to the folder with the four IDX files")
    return Path(value)


@pytest.fixture(scope="session")
def mnist(mnist_dir, tmp_path_factory):
    """(train, test) splits of the real MNIST, unpacked once per session."""
    from train.data import load_mnist

    return load_mnist(mnist_dir, tmp_path_factory.mktemp("mnist-root"))
