"""Shared fixtures (the real MNIST copy, a model trained on it) and the test kinds.

Every test has exactly one kind, from a module-level ``pytestmark``: ``unit``, ``handler``, ``e2e`` or ``container``
(pyproject.toml describes them). Tests that use MNIST (the ``mnist_dir``/``mnist`` fixtures, directly
or through another fixture) are marked ``mnist`` here, so ``-m "not mnist"`` never needs the data set.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

KINDS = ("unit", "handler", "e2e", "container")
ROOT = Path(__file__).resolve().parent.parent
UNSET = "needs the full MNIST data set: set MNIST_DIR to the folder with the four IDX files"


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers added here
def pytest_collection_modifyitems(config, items):
    wrong = []
    for item in items:
        kinds = sorted({mark.name for mark in item.iter_markers()} & set(KINDS))
        if len(kinds) != 1:
            wrong.append(f"{item.nodeid}: {', '.join(kinds) or 'no kind'}")
        if "mnist_copy" in item.fixturenames:
            item.add_marker(pytest.mark.mnist)
    if wrong:
        raise pytest.UsageError(
            f"every test needs exactly one kind of {KINDS} (a module-level pytestmark):\n  " + "\n  ".join(wrong)
        )


def checked_mnist(value: str | None, root: Path):
    """(MNIST_DIR, (train, test)); skip when ``value`` is unset, fail when it names no usable copy."""
    if not value:
        pytest.skip(UNSET)
    from train.data import DataError, load_mnist

    try:
        return Path(value), load_mnist(value, root)
    except DataError as error:
        pytest.fail(f"MNIST_DIR is set but unusable: {error} (unset MNIST_DIR to skip these tests)", pytrace=False)


@pytest.fixture(scope="session")
def mnist_copy(tmp_path_factory):
    """The MNIST copy named by MNIST_DIR, checked (every file, its checksum) and loaded once."""
    return checked_mnist(os.environ.get("MNIST_DIR"), tmp_path_factory.mktemp("mnist-root"))


@pytest.fixture(scope="session")
def mnist_dir(mnist_copy) -> Path:
    """The folder of MNIST IDX files named by MNIST_DIR."""
    return mnist_copy[0]


@pytest.fixture(scope="session")
def mnist(mnist_copy):
    """(train, test) splits of the real MNIST."""
    return mnist_copy[1]


@dataclass(frozen=True)
class TrainedRun:
    checkpoint: Path
    stdout: str
    metrics: dict  # reports/metrics.json


@pytest.fixture(scope="session")
def mnist_epoch(mnist_dir, tmp_path_factory) -> TrainedRun:
    """`python -m train --epochs 1 --batch-size 128 --holdout 0` on the full MNIST (all 60,000 training
    digits), once per session.

    The defaults (SGD at batch 256) are tuned for full runs; one epoch of them is only 235
    steps and varies widely with the seed. Batch 128 doubles the steps and lands reliably
    above the tests' thresholds (docs/training.md).
    """
    tmp = tmp_path_factory.mktemp("mnist-epoch")
    command = [sys.executable, "-m", "train", "--epochs", "1", "--batch-size", "128", "--device", "cpu"]
    command += ["--holdout", "0", "--data-dir", str(mnist_dir), "--data-root", str(tmp)]
    command += ["--checkpoint", str(tmp / "mnist_cnn.pth"), "--reports-dir", str(tmp / "reports")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"python -m train failed:\n{result.stdout}\n{result.stderr}"
    metrics = json.loads((tmp / "reports" / "metrics.json").read_text())
    return TrainedRun(tmp / "mnist_cnn.pth", result.stdout, metrics)


@pytest.fixture
def one_cpu():
    """This process (and what it starts) restricted to one CPU, as a container's cpuset would."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs Linux CPU affinity")
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)
