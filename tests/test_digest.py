"""The calibration's digest and the Makefile's refit rule, on a copy of the repository: no refit for a
comment, a refit for a code change, a one-line reason before either, training announced without a checkpoint."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from model.calibration import Calibration, calibration_path, read_info, save_calibration
from tests.support import untrained_checkpoint
from train.digest import fit_inputs, fit_sources, source_digest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tree(tmp_path) -> Path:
    """The repository's tracked files (as in a clone) with the shared venv, and an untrained checkpoint."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    copy = tmp_path / "repo"
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    (copy / ".venv").symlink_to((ROOT / ".venv").resolve())
    # The shared venv is installed: make must not see the copied requirements as newer than its stamp.
    stamp = (copy / ".venv" / ".installed").stat().st_mtime
    for name in [*copy.glob("requirements*.txt"), *copy.glob("scripts/setup/*")]:
        os.utime(name, (stamp - 1, stamp - 1))
    return copy


def fitted(tree: Path) -> Path:
    """A checkpoint and a calibration that records the tree's current inputs."""
    checkpoint = untrained_checkpoint(tree / "mnist_cnn.pth")
    save_calibration(calibration_path(checkpoint), Calibration(1.0, None), {"inputs": fit_inputs(checkpoint, tree)})
    return checkpoint


def make(tree: Path, *args: str) -> subprocess.CompletedProcess:
    # A refit or a training run that starts fails at once on a missing data set: what counts is that it started.
    env = {**os.environ, "MNIST_DIR": str(tree / "no-mnist")}
    command = ["make", "--no-print-directory", *args, "ARGS=--data-dir no-mnist", "CAL_ARGS=--data-dir no-mnist"]
    return subprocess.run(command, cwd=tree, capture_output=True, text=True, env=env, timeout=300)


def test_the_fit_depends_on_the_preprocessing_the_renderers_and_the_fitting_code():
    sources = fit_sources()
    for name in (
        "handler/decode.py",
        "handler/preprocess.py",
        "handler/ink.py",
        "handler/layout.py",
        "model/calibration.py",
        "train/calibrate.py",
        "train/calibration_sets.py",
        "train/fitting.py",
        "train/renderers/user_style.py",
        "train/renderers/glyphs.py",
    ):
        assert name in sources
    assert "handler/mnist_handler.py" not in sources and "train/run.py" not in sources


def test_comments_docstrings_and_layout_do_not_change_a_source_digest(tmp_path):
    original = (ROOT / "handler/preprocess.py").read_text()
    edited = tmp_path / "preprocess.py"
    reworded = original.replace('"""', '"""Reworded. ', 1).replace("\n\n\n", "\n\n\n\n")
    edited.write_text("# a new comment\n" + reworded + "\n# end\n")
    assert source_digest(edited) == source_digest(ROOT / "handler/preprocess.py")
    edited.write_text(original + "\nEXTRA = 1\n")
    assert source_digest(edited) != source_digest(ROOT / "handler/preprocess.py")


def test_a_comment_in_the_preprocessing_triggers_no_refit(tree):
    calibration = calibration_path(fitted(tree))
    before = calibration.read_bytes()
    preprocess = tree / "handler/preprocess.py"
    preprocess.write_text(preprocess.read_text() + "\n# a comment that changes nothing\n")
    result = make(tree, calibration.name)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and calibration.read_bytes() == before


def test_a_change_to_the_fitting_code_triggers_a_refit_and_says_why_first(tree):
    calibration = calibration_path(fitted(tree))
    calibrate = tree / "train/calibrate.py"
    calibrate.write_text(calibrate.read_text().replace("FASHION_SHARE = 0.75", "FASHION_SHARE = 0.7"))
    result = make(tree, calibration.name)
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"refitting {calibration.name}: train/calibrate.py changed since its fit (about ")
    assert "python -m train.calibrate" in result.stdout  # the refit ran (and stopped on the missing data set)
    assert "error: MNIST data dir" in result.stderr


def test_a_new_checkpoint_triggers_a_refit(tree):
    checkpoint = fitted(tree)
    untrained_checkpoint(checkpoint, seed=1)
    result = make(tree, calibration_path(checkpoint).name)
    assert result.stdout.splitlines()[0].startswith("refitting mnist_cnn.calibration.pt: checkpoint changed")


def test_without_a_checkpoint_archive_says_it_trains_and_how_long_first(tree):
    result = make(tree, "archive")
    first = result.stdout.splitlines()[0]
    assert first.startswith("no mnist_cnn.pth: training it first with `make train` (about ")
    assert "python -m train " in result.stdout and result.returncode != 0


def test_a_fit_records_its_inputs(tree):
    checkpoint = fitted(tree)
    recorded = read_info(calibration_path(checkpoint))["inputs"]
    assert set(recorded) == {"checkpoint", *fit_sources(tree)}
