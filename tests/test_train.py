"""The training pipeline: short runs on rendered digits, one epoch on the real MNIST, CLI errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from model.inference import load_for_inference
from train.data import Split
from train.evaluate import evaluate_model
from train.evaluate import main as evaluate_main
from train.reports import FIGURES
from train.run import build_parser, train
from train.run import main as train_main

pytestmark = pytest.mark.unit

METRICS_KEYS = {
    "history",
    "test_accuracy",
    "test_loss",
    "per_class",
    "confusion_matrix",
    "wall_time_s",
    "device",
    "torch_version",
    "seed",
    "options",
}
EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_time_s"}


def rendered_digits(n: int, seed: int) -> Split:
    """White digits drawn with Pillow's font on black 28x28, at random sizes and positions."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        label = i % 10
        font = ImageFont.load_default(size=int(rng.integers(16, 23)))
        img = Image.new("L", (28, 28))
        ImageDraw.Draw(img).text((14 + rng.integers(-3, 4), 14 + rng.integers(-3, 4)), str(label), 255, font, "mm")
        images.append(np.asarray(img.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR)))
        labels.append(label)
    return Split(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64))


@pytest.fixture(scope="module")
def digits():
    return rendered_digits(1000, seed=1), rendered_digits(300, seed=2)


def run(tmp_path, digits, *options: str) -> dict:
    args = build_parser().parse_args(
        ["--checkpoint", str(tmp_path / "w.pth"), "--reports-dir", str(tmp_path / "reports"), "--device", "cpu"]
        + list(options)
    )
    return train(args, *digits, log=lambda line: None)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, digits):
    tmp = tmp_path_factory.mktemp("short-run")
    # 66 steps on 1,000 digits: the default peak learning rate (0.1, for full runs on MNIST) overshoots.
    return tmp, run(tmp, digits, "--epochs", "6", "--batch-size", "64", "--lr", "0.02")


def test_short_run_learns(short_run):
    _, metrics = short_run
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]


def test_short_run_writes_every_output(short_run):
    tmp, metrics = short_run
    assert (tmp / "w.pth").stat().st_size > 1_000_000  # 421,834 fp32 weights
    for name in FIGURES:
        with Image.open(tmp / "reports" / name) as img:
            img.verify()
            assert img.format == "PNG"
        with Image.open(tmp / "reports" / name) as img:
            assert img.size[0] > 200 and img.size[1] > 200
            assert np.asarray(img.convert("L")).std() > 0  # not a blank canvas
    saved = json.loads((tmp / "reports" / "metrics.json").read_text())
    assert METRICS_KEYS <= set(saved)
    assert len(saved["history"]) == 6 and all(EPOCH_KEYS <= set(h) for h in saved["history"])
    # The default visits every digit in the first epoch, then the 60% it finds hardest.
    assert [h["examples"] for h in saved["history"]] == [1000] + [600] * 5
    assert set(saved["per_class"]) == {str(d) for d in range(10)}
    assert {"precision", "recall", "f1", "support"} <= set(saved["per_class"]["3"])
    assert np.array(saved["confusion_matrix"]).sum() == 300
    assert saved["test_accuracy"] == metrics["test_accuracy"]


def test_checkpoint_is_a_plain_fp32_state_dict(short_run):
    tmp, _ = short_run
    state = torch.load(tmp / "w.pth")
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert all(v.dtype == torch.float32 for k, v in state.items() if "num_batches" not in k)


def test_evaluating_the_checkpoint_reproduces_the_reported_accuracy(short_run, digits):
    tmp, metrics = short_run
    recomputed, _ = evaluate_model(load_for_inference(tmp / "w.pth"), digits[1])
    assert recomputed["test_accuracy"] == metrics["test_accuracy"]
    assert recomputed["confusion_matrix"] == metrics["confusion_matrix"]


def test_same_seed_gives_identical_weights(tmp_path, digits):
    small = (Split(digits[0].images[:300], digits[0].labels[:300]), digits[1])
    run(tmp_path / "a", small, "--epochs", "1", "--batch-size", "64", "--seed", "7")
    run(tmp_path / "b", small, "--epochs", "1", "--batch-size", "64", "--seed", "7")
    a, b = torch.load(tmp_path / "a" / "w.pth"), torch.load(tmp_path / "b" / "w.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)
    run(tmp_path / "c", small, "--epochs", "1", "--batch-size", "64", "--seed", "8")
    c = torch.load(tmp_path / "c" / "w.pth")
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ---- the real data set ------------------------------------------------------


def test_one_epoch_on_mnist_reaches_98_5_percent(mnist_epoch):
    metrics = mnist_epoch.metrics
    assert metrics["test_accuracy"] >= 0.985
    assert metrics["num_test"] == 10_000
    assert "epoch  1/1  train loss" in mnist_epoch.stdout and "test loss" in mnist_epoch.stdout


def test_evaluate_cli_reproduces_training_accuracy(mnist_epoch, mnist_dir, tmp_path):
    trained = mnist_epoch.metrics
    data_root = mnist_epoch.checkpoint.parent  # where the training run unpacked MNIST
    cmd = [sys.executable, "-m", "train.evaluate", "--checkpoint", str(mnist_epoch.checkpoint)]
    cmd += ["--data-dir", str(mnist_dir), "--data-root", str(data_root), "--reports-dir", str(tmp_path / "re-eval")]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((tmp_path / "re-eval" / "metrics.json").read_text())
    assert evaluated["test_accuracy"] == trained["test_accuracy"]
    assert evaluated["confusion_matrix"] == trained["confusion_matrix"]
    # The per-epoch figure (tensor path) agrees with the served-preprocessing path.
    assert trained["history"][-1]["test_acc"] == pytest.approx(trained["test_accuracy"], abs=1e-6)
    for name in ("confusion_matrix.png", "samples.png"):
        assert (tmp_path / "re-eval" / name).stat().st_size > 0


# ---- bad options --------------------------------------------------------------


@pytest.fixture
def cli(capsys):
    """Run a CLI's main() in-process; return (exit code, stderr)."""

    def run_main(module: str, *args: str) -> tuple[int, str]:
        main = {"train": train_main, "train.evaluate": evaluate_main}[module]
        try:
            code = main(list(args))
        except SystemExit as stop:
            code = stop.code
        return code, capsys.readouterr().err

    return run_main


def assert_one_line_error(result: tuple[int, str], *words: str):
    code, stderr = result
    assert code != 0
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    for word in words:
        assert word in stderr


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "plain-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("epochs", ["-1", "0", "ten"])
def test_bad_epochs(cli, epochs):
    assert_one_line_error(cli("train", "--epochs", epochs), "--epochs")


@pytest.mark.parametrize("holdout", ["-1", "half"])
def test_bad_holdout(cli, holdout):
    assert_one_line_error(cli("train", "--holdout", holdout), "--holdout")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--elastic", "-1"), ("--elastic", "strong"), ("--elastic-cells", "0"), ("--warmup", "0"), ("--warmup", "1")]
    + [("--select", "0"), ("--select", "1.5"), ("--select", "most"), ("--select-pressure", "0")],
)
def test_bad_augmentation_and_schedule_options(cli, option, value):
    assert_one_line_error(cli("train", option, value), option)


def test_missing_data_dir_as_a_user_sees_it(tmp_path):
    cmd = [sys.executable, "-m", "train", "--data-dir", str(tmp_path / "nowhere"), "--data-root", str(tmp_path)]
    cmd += ["--checkpoint", str(tmp_path / "w.pth"), "--reports-dir", str(tmp_path / "r")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr
    assert_one_line_error((result.returncode, result.stderr), "nowhere")


def test_unwritable_reports_dir(cli, tmp_path, a_file):
    result = cli("train", "--reports-dir", str(a_file / "reports"), "--checkpoint", str(tmp_path / "w.pth"))
    assert_one_line_error(result, "reports dir")


def test_unwritable_checkpoint(cli, tmp_path, a_file):
    assert_one_line_error(cli("train", "--checkpoint", str(a_file / "w.pth")), "checkpoint")
    assert_one_line_error(cli("train", "--checkpoint", str(tmp_path)), "is a directory")


def test_evaluate_without_checkpoint(cli, tmp_path):
    result = cli("train.evaluate", "--checkpoint", str(tmp_path / "none.pth"), "--reports-dir", str(tmp_path))
    assert_one_line_error(result, "does not exist")


def test_evaluate_with_a_damaged_checkpoint(cli, tmp_path, a_file):
    result = cli("train.evaluate", "--checkpoint", str(a_file), "--reports-dir", str(tmp_path))
    assert_one_line_error(result, "not an MnistCNN state_dict")
