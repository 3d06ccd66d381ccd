"""scripts.accuracy.styles: the textbook recipe it compares with, scoring renders of either MNIST split, flags and
calibration error, and the non-digit sets (scripts.accuracy.non_digits)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from handler.preprocess import PreprocessError
from model import MnistCNN
from model.calibration import Calibration, calibration_path, save_calibration
from scripts.accuracy import non_digits as eval_non_digits
from scripts.accuracy import photos
from scripts.accuracy import styles as eval_styles
from scripts.accuracy.styles import plain_recipe
from tests.digits import centre_of_mass, draw_seven, ink_box, mnist_like_ring, pixels, similarity
from tests.support import untrained_checkpoint
from tests.test_calibration import energy_check

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


def two_digits() -> tuple[np.ndarray, np.ndarray]:
    """A ring (0) and a seven, 28x28 in MNIST's polarity, and their labels."""
    digits = np.stack([np.asarray(mnist_like_ring()), np.asarray(draw_seven((28, 28), (6, 4, 21, 23), 3, 255, 0))])
    return digits, np.array([0, 7])


def test_score_style_scores_the_plain_recipe_on_the_same_renders():
    digits, labels = two_digits()
    model = MnistCNN().eval()
    row = eval_styles.score_style(model, torch.device("cpu"), digits, labels, "tight-thick", 2, 0, True)
    assert row["n"] == 2 and row["refused"] == 0
    assert set(row["plain"]) == {"accuracy", "refused", "preprocess_us"}
    assert row["plain"]["refused"] == 0 and row["plain"]["preprocess_us"] > 0


FLAG_ALL = Calibration(1.5, energy_check(-1e9))  # every answered picture is flagged


def test_score_style_with_a_calibration_reports_flags_and_calibration_error():
    digits, labels = two_digits()
    model = MnistCNN().eval()
    plain = eval_styles.score_style(model, torch.device("cpu"), digits, labels, "tight-thick", 2, 0, True)
    assert "flagged" not in plain and "ece_before" not in plain
    row = eval_styles.score_style(model, torch.device("cpu"), digits, labels, "tight-thick", 2, 0, True, FLAG_ALL)
    assert row["accuracy"] == plain["accuracy"]  # a temperature never changes the digit
    assert row["flagged"] == 1.0 and row["plain"]["flagged"] == 1.0
    assert 0.0 <= row["ece_before"] <= 1.0 and 0.0 <= row["ece_after"] <= 1.0


def test_non_digits_are_counted_refused_or_flagged():
    model = MnistCNN().eval()
    bar = Image.fromarray(np.pad(np.full((20, 4), 255, np.uint8), ((4, 4), (12, 12))), mode="L")
    pictures = [None, Image.new("L", (40, 40), 128), bar, bar]
    row = eval_non_digits.score_non_digits(model, torch.device("cpu"), FLAG_ALL, pictures)
    assert row == {
        "n": 4,
        "refused": 2,
        "flagged": 2,
        "flagged_share": 0.5,
        "flagged_or_refused_share": 1.0,
        "flagged_share_of_answered": 1.0,
        "errors": 0,
    }
    assert eval_non_digits.score_non_digits(model, torch.device("cpu"), None, pictures)["flagged"] == 0
    rendered = list(eval_non_digits.rendered("text", 2, 0))
    assert len(rendered) == 2 and all(isinstance(p, Image.Image) for p in rendered)


def test_cli_renders_training_digits_when_asked(mnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MNIST is unpacked into ./data
    checkpoint = untrained_checkpoint(tmp_path / "weights.pth")
    argv = ["--checkpoint", str(checkpoint), "--data-dir", str(mnist_dir), "--per-style", "3", "--styles", "lowres-8"]
    assert eval_styles.main([*argv, "--split", "train", "--plain"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "train" and set(report["styles"]) == {"lowres-8"}
    assert report["styles"]["lowres-8"]["n"] == 3 and "plain" in report["styles"]["lowres-8"]


def test_cli_scores_flags_and_non_digit_sets_with_the_checkpoints_calibration(mnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MNIST is unpacked into ./data
    checkpoint = untrained_checkpoint(tmp_path / "weights.pth")
    save_calibration(calibration_path(checkpoint), FLAG_ALL, {})
    argv = ["--checkpoint", str(checkpoint), "--data-dir", str(mnist_dir), "--per-style", "2", "--styles", "paper"]
    argv += ["--non-digits", "--per-kind", "1", "--fashion", "3", "--output", str(tmp_path / "out" / "report.json")]
    assert eval_styles.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["temperature"] == pytest.approx(1.5) and report["max_style_flagged"] == 1.0
    assert {"flagged", "ece_before", "ece_after"} <= set(report["styles"]["paper"])
    assert set(report["non_digits"]) >= {"scene", "texture", "text", "shapes", "scribble"}
    rendered = {name: row for name, row in report["non_digits"].items() if name not in ("fashion_mnist_test", "photos")}
    assert all(row["n"] == 1 for row in rendered.values())
    if photos.available():
        assert report["non_digits"]["photos"]["n"] == len(photos.photo_files())
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
