"""train.renderers.user_style: realistic renders that the preprocessing turns back into the digit."""

import csv
import io

import numpy as np
import pytest
from PIL import Image

from handler.preprocess import to_model_input
from tests.digits import draw_seven, mnist_like_ring, similarity
from train.renderers import user_style
from train.renderers.user_style import STYLES, render, render_bytes, write_renders

pytestmark = pytest.mark.unit


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


FRAME_FILLING = ["tight-thick", "tight-inverted", "lowres-blur", "lowres-8", "edge-touching"]


def ground_and_ink(data: bytes) -> tuple[np.ndarray, int, np.ndarray]:
    """(grey pixels, the ground's level, where the ink is: half-way or more from the ground).

    For a picture of a 0 the corners are ground, however tight the crop.
    """
    grey = np.asarray(decode(data).convert("L"))
    ground = int(np.median([grey[0, 0], grey[0, -1], grey[-1, 0], grey[-1, -1]]))
    return grey, ground, np.abs(grey.astype(np.int16) - ground) > (int(grey.max()) - int(grey.min())) // 2


@pytest.mark.parametrize("style", FRAME_FILLING)
def test_frame_filling_styles_fill_the_frame(style, digits):
    for seed in range(8):
        grey, _, ink = ground_and_ink(render_bytes(digits[0], style, seed)[0])
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        spans = ((rows[-1] - rows[0] + 1) / grey.shape[0], (cols[-1] - cols[0] + 1) / grey.shape[1])
        assert max(spans) >= 0.75, (style, seed, spans)


def test_tight_crops_hug_the_ink(digits):
    grounds = {}
    for style in ("tight-thick", "tight-inverted"):
        for seed in range(6):
            grey, ground, ink = ground_and_ink(render_bytes(digits[0], style, seed)[0])
            rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
            h, w = grey.shape
            margins = (rows[0], cols[0], h - 1 - rows[-1], w - 1 - cols[-1])
            assert max(margins) <= 3, (style, seed, margins)  # 0-2 px, plus an anti-aliased edge pixel
            grounds.setdefault(style, []).append(ground)
    assert min(grounds["tight-thick"]) > 128 > max(grounds["tight-inverted"])  # dark ink on light, and the reverse


def test_edge_touching_and_low_resolution_shapes(digits):
    for seed in range(6):
        grey, _, ink = ground_and_ink(render_bytes(digits[0], "edge-touching", seed)[0])
        assert grey.shape[0] == grey.shape[1]
        assert ink[0].any() and ink[-1].any()  # strokes touch the top and the bottom edge
    polarities = set()
    for style in ("lowres-blur", "lowres-8"):
        for seed in range(8):
            grey, ground, _ = ground_and_ink(render_bytes(digits[0], style, seed)[0])
            assert grey.shape == (64, 64)
            polarities.add(ground > 128)
    assert polarities == {True, False}


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
    with pytest.raises(SystemExit) as exit_:
        user_style.main(["--out", str(tmp_path), "--per-style", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --per-style: must be a positive integer") and err.count("\n") == 1
    assert user_style.main(["--out", str(tmp_path), "--data-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("radius", [0.25, 0.9, 2.1, 5.5])
def test_blurring_the_ink_region_is_blurring_the_whole_picture(radius):
    """The photo's lens blur on the ink's neighbourhood only gives Pillow's blur of the whole picture."""
    from PIL import ImageFilter

    from train.renderers.strokes import blurred

    rng = np.random.default_rng(int(radius * 100))
    for top, left in ((0, 0), (3, 140), (90, 60), (114, 154)):  # at the corners and edges, and inside
        ink = np.zeros((120, 160), dtype=np.uint8)
        ink[top : top + 6, left : left + 6] = rng.integers(1, 256, (6, 6))[: 120 - top, : 160 - left]
        expected = np.asarray(Image.fromarray(ink).filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
        assert np.array_equal(blurred(ink, radius), expected)
    assert not blurred(np.zeros((40, 30), dtype=np.uint8), radius).any()
