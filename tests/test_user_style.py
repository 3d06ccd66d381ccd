"""scripts.user_style: realistic renders that the preprocessing turns back into the digit."""

import csv
import io

import numpy as np
import pytest
from PIL import Image

from handler.preprocess import to_model_input
from scripts import user_style
from scripts.user_style import STYLES, render, render_bytes, write_renders
from tests.digits import draw_seven, mnist_like_ring, similarity


@pytest.fixture(scope="module")
def digits() -> list[np.ndarray]:
    """Two MNIST-like 28x28 uint8 digits (a 0 and a 7), light ink on black."""
    seven = draw_seven((28, 28), (6, 4, 21, 23), 3, ink=255, paper=0)
    return [np.asarray(mnist_like_ring()), np.asarray(seven)]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("style", list(STYLES))
def test_same_seed_same_file_other_seed_other_file(style, digits):
    first, ext = render_bytes(digits[1], style, seed=5)
    again, _ = render_bytes(digits[1], style, seed=5)
    other, _ = render_bytes(digits[1], style, seed=6)
    assert first == again
    assert first != other
    assert decode(first).format == {"jpg": "JPEG", "png": "PNG"}[ext]


# A digit shrunk to 8 pixels keeps only a blurred outline of its shape.
MIN_SIMILARITY = {"lowres-8": 0.45}


@pytest.mark.parametrize("style", list(STYLES))
def test_preprocessing_recovers_the_digit(style, digits):
    """Each render, decoded and preprocessed, looks like the digit it was made from."""
    for digit in digits:
        expected = to_model_input(Image.fromarray(digit))
        for seed in range(4):
            data, _ = render_bytes(digit, style, seed)
            assert similarity(to_model_input(decode(data)), expected) > MIN_SIMILARITY.get(style, 0.75), (style, seed)


def test_photo_is_a_large_rgb_jpeg_with_uneven_light(digits):
    for seed in range(3):
        data, ext = render_bytes(digits[1], "photo", seed)
        image = decode(data)
        assert (ext, image.format, image.mode) == ("jpg", "JPEG", "RGB")
        assert 400 <= max(image.size) <= 1200
        grey = np.asarray(image.convert("L"), dtype=np.float32)
        corners = [grey[:20, :20].mean(), grey[:20, -20:].mean(), grey[-20:, :20].mean(), grey[-20:, -20:].mean()]
        assert max(corners) - min(corners) > 5  # the paper is not evenly lit
        assert grey.min() < 0.6 * np.median(grey)  # dark ink on lighter paper


def test_canvas_is_black_strokes_on_transparent_rgba(digits):
    image = decode(render_bytes(digits[1], "canvas", 0)[0])
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (280, 280))
    rgba = np.asarray(image)
    assert (rgba[..., 3] == 0).mean() > 0.5  # mostly transparent
    assert (rgba[..., :3] == 0).all()  # (0, 0, 0, 0) background, black strokes: "black" if alpha is dropped
    assert (rgba[..., 3] == 255).sum() > 500  # solid strokes
    assert ((rgba[..., 3] > 0) & (rgba[..., 3] < 255)).any()  # anti-aliased edges


def test_scan_is_sixteen_bit_or_palette(digits):
    modes = {decode(render_bytes(digits[0], "scan", seed)[0]).mode for seed in range(8)}
    assert modes == {"I;16", "P"}


def test_small_styles_polarity_and_size(digits):
    small = decode(render_bytes(digits[1], "inverted-small", 0)[0])
    assert max(small.size) <= 64
    grey = np.asarray(small.convert("L"))
    assert np.median(grey) > 200  # dark ink on white
    off = decode(render_bytes(digits[1], "offcentre", 0)[0])
    assert off.mode == "L" and off.size[0] >= 48
    assert np.median(np.asarray(off)) == 0  # MNIST's polarity


def test_unknown_style_is_refused(digits):
    with pytest.raises(ValueError, match="unknown style"):
        render(digits[0], "watercolour", 0)


def test_write_renders_files_and_labels(tmp_path, digits):
    images = np.stack(digits * 3)  # six "test digits"
    labels = np.array([0, 7] * 3)
    labels_csv = write_renders(images, labels, tmp_path, ["canvas", "photo"], per_style=4, seed=1)
    rows = list(csv.DictReader(open(labels_csv)))
    assert len(rows) == 8
    assert {r["style"] for r in rows} == {"canvas", "photo"}
    for row in rows:
        assert int(row["label"]) == labels[int(row["mnist_index"])]
        assert row["file"].endswith(f"_{row['label']}.{'jpg' if row['style'] == 'photo' else 'png'}")
        decode((tmp_path / row["file"]).read_bytes())


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert user_style.main(["--out", str(tmp_path), "--per-style", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --per-style")
    assert user_style.main(["--out", str(tmp_path), "--data-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
