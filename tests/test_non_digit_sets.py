"""The pictures the not-a-digit check learns non-digits from (letters and symbols), and the real
photographs it is only measured on."""

import numpy as np
import pytest
from PIL import Image

from handler.decode import decode_image
from scripts.accuracy import photos
from train.renderers import glyphs

pytestmark = pytest.mark.unit


def test_glyphs_are_reproducible_and_hold_no_digit_like_character():
    assert np.array_equal(np.asarray(glyphs.render(3)), np.asarray(glyphs.render(3)))
    assert not np.array_equal(np.asarray(glyphs.render(3)), np.asarray(glyphs.render(4)))
    assert not set(glyphs.CHARACTERS) & set("0123456789OoQDIlijTtZzSsBbGgq()[]/|\\")
    pictures = [glyphs.render(seed) for seed in range(40)]
    assert all(isinstance(p, Image.Image) and 40 <= p.height <= 120 for p in pictures)
    # Either polarity: some dark ink on light paper, some light on dark.
    corners = [np.asarray(p.convert("L"))[0, 0] > 127 for p in pictures]
    assert any(corners) and not all(corners)


def test_glyphs_use_the_machines_fonts_when_there_are_some():
    if not any(d.is_dir() for d in glyphs.FONT_DIRS):
        pytest.skip("no DejaVu or Liberation fonts here: Pillow's own font is used")
    assert len(glyphs.font_files()) >= 10


def test_the_photographs_are_real_decodable_and_not_scikit_learns_samples():
    if not photos.available():
        pytest.skip("needs scikit-image (requirements.txt)")
    files = photos.photo_files()
    assert len(files) == len(photos.PHOTOS) * (1 + photos.CROPS) + 200
    assert files == photos.photo_files()  # reproducible
    assert not any(name.startswith(("china", "flower")) for name, _ in files)
    for _, data in files[:: len(files) // 25]:
        picture = decode_image(data)
        assert min(picture.size) >= 20
