"""scripts.eval_styles: the textbook recipe it compares with, and scoring renders of either MNIST split."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from handler.preprocess import PreprocessError
from model import MnistCNN
from scripts import eval_styles
from scripts.eval_styles import plain_recipe
from tests.digits import centre_of_mass, draw_seven, ink_box, mnist_like_ring, pixels, similarity
from tests.support import untrained_checkpoint

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-ink", "light-ink"])
def test_plain_recipe_lays_a_digit_out_as_mnist(dark_on_light):
    ink, paper = (20, 235) if dark_on_light else (235, 20)
    x = plain_recipe(draw_seven((300, 240), (40, 30, 140, 150), 10, ink, paper))
    assert x.shape == (1, 28, 28)
    p = pixels(x)
    cy, cx = centre_of_mass(p)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert max(ink_box(p, level=0.0)) == 20
    assert p[0, 0] == pytest.approx(0.0, abs=1e-6)  # the ink is bright on black, whichever it was


def test_plain_recipe_reads_a_transparent_canvas_and_refuses_a_uniform_picture():
    alpha = 255 - np.asarray(draw_seven((280, 280), (40, 30, 200, 250), 18, 0, 255))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., 3] = alpha  # black strokes on a transparent background
    drawn = plain_recipe(draw_seven((280, 280), (40, 30, 200, 250), 18, 0, 255))
    assert similarity(plain_recipe(Image.fromarray(rgba)), drawn) > 0.98
    with pytest.raises(PreprocessError):
        plain_recipe(Image.new("L", (50, 50), 128))


def test_score_style_scores_the_plain_recipe_on_the_same_renders():
    digits = np.stack([np.asarray(mnist_like_ring()), np.asarray(draw_seven((28, 28), (6, 4, 21, 23), 3, 255, 0))])
    model = MnistCNN().eval()
    row = eval_styles.score_style(model, torch.device("cpu"), digits, np.array([0, 7]), "tight-thick", 2, 0, True)
    assert row["n"] == 2 and row["refused"] == 0
    assert set(row["plain"]) == {"accuracy", "refused", "preprocess_us"}
    assert row["plain"]["refused"] == 0 and row["plain"]["preprocess_us"] > 0


def test_cli_renders_training_digits_when_asked(mnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MNIST is unpacked into ./data
    checkpoint = untrained_checkpoint(tmp_path / "weights.pth")
    argv = ["--checkpoint", str(checkpoint), "--data-dir", str(mnist_dir), "--per-style", "3", "--styles", "lowres-8"]
    assert eval_styles.main([*argv, "--split", "train", "--plain"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "train" and set(report["styles"]) == {"lowres-8"}
    assert report["styles"]["lowres-8"]["n"] == 3 and "plain" in report["styles"]["lowres-8"]
