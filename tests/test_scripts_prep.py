"""The preprocessing scripts' plumbing: offline scoring and the micro-benchmark."""

import json
from pathlib import Path

import numpy as np
import torch

from model import MnistCNN
from scripts import bench_preprocess, eval_styles
from tests.digits import draw_seven, mnist_like_ring

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_score_style_counts_every_render():
    digits = np.stack([np.asarray(mnist_like_ring()), np.asarray(draw_seven((28, 28), (6, 4, 21, 23), 3, 255, 0))])
    labels = np.array([0, 7])
    model = MnistCNN().eval()
    result = eval_styles.score_style(model, torch.device("cpu"), digits, labels, "canvas", n=2, seed=0)
    assert result["n"] == 2 and result["refused"] == 0
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["preprocess_us"] > 0 and result["decode_us"] > 0


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
