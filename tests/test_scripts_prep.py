"""The preprocessing scripts' plumbing: offline scoring and the micro-benchmark."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handler.preprocess import to_model_input
from model.inference import load_for_inference
from scripts.accuracy import styles as eval_styles
from scripts.bench import preprocess as bench_preprocess
from tests.digits import draw_seven, mnist_like_ring
from tests.models import ConstantModel, TemplateModel

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RING, SEVEN = np.asarray(mnist_like_ring()), np.asarray(draw_seven((28, 28), (6, 4, 21, 23), 3, 255, 0))
# Three 7s, two 0s and a blank labelled 7: a refused picture must count as wrong even when its label is
# what the model would have answered.
DIGITS = np.stack([RING, SEVEN, SEVEN, RING, SEVEN, np.zeros((28, 28), np.uint8)])
LABELS = np.array([0, 7, 7, 0, 7, 7])


@pytest.mark.parametrize("style", ["canvas", "scan"])
def test_score_style_counts_right_wrong_and_refused_renders(style):
    templates = {0: to_model_input(Image.fromarray(RING)), 7: to_model_input(Image.fromarray(SEVEN))}
    cpu, n = torch.device("cpu"), len(LABELS)  # n = every digit, in some order
    reader = eval_styles.score_style(TemplateModel(templates), cpu, DIGITS, LABELS, style, n=n, seed=0)
    assert reader["n"] == n and reader["refused"] == 1
    assert reader["accuracy"] == pytest.approx(5 / 6)  # every digit read but the refused blank
    assert reader["preprocess_us"] > 0 and reader["decode_us"] > 0
    always_seven = eval_styles.score_style(ConstantModel(7), cpu, DIGITS, LABELS, style, n=n, seed=0)
    assert always_seven["accuracy"] == pytest.approx(3 / 6) and always_seven["refused"] == 1


def test_score_mnist_reproduces_the_training_evaluation(mnist, mnist_epoch):
    """The same 10,000 test digits through eval_styles' path and train.evaluate's: the same accuracy."""
    _, test = mnist
    cpu = torch.device("cpu")
    model = load_for_inference(mnist_epoch.checkpoint)
    result = eval_styles.score_mnist(model, cpu, test.images.numpy(), test.labels.numpy())
    assert result["n"] == 10_000
    assert result["accuracy"] == pytest.approx(mnist_epoch.metrics["test_accuracy"], abs=1e-6)  # 1 digit = 1e-4


def test_eval_styles_missing_checkpoint_is_one_line_error(tmp_path, capsys):
    assert eval_styles.main(["--checkpoint", str(tmp_path / "none.pth")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "make train" in err and err.count("\n") == 1


def test_bench_preprocess_reports_every_picture(capsys):
    files = [SAMPLES / "7_mnist.png", SAMPLES / "4_canvas.png", SAMPLES / "blank.png"]
    assert bench_preprocess.main([*map(str, files), "--seconds", "0.001"]) == 0
    rows = json.loads(capsys.readouterr().out)["pictures"]
    assert [r["file"] for r in rows] == [f.name for f in files]
    assert all(r["decode_us"] > 0 and r["preprocess_us"] > 0 for r in rows)
    assert "blank" in rows[2]["error"] and "error" not in rows[0]


def test_bench_preprocess_rejects_a_non_picture(tmp_path, capsys):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    assert bench_preprocess.main([str(junk), "--seconds", "0.001"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot read")
