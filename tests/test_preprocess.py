"""handler.preprocess on real pictures made here: every mode, both polarities, any size."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from handler.preprocess import PreprocessError, normalize, to_model_input
from tests.digits import big_seven, centre_of_mass, draw_seven, ink_box, mnist_like_ring, pixels, similarity

pytestmark = pytest.mark.unit

BLANK = "no digit found in the image"


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    """The model input for the plain dark-on-light 8-bit picture."""
    return to_model_input(big_seven())


def assert_model_input(x: torch.Tensor) -> None:
    assert x.shape == (1, 28, 28)
    assert x.dtype == torch.float32
    assert float(x.min()) >= float(normalize(torch.tensor(0.0))) - 1e-6
    assert float(x.max()) <= float(normalize(torch.tensor(1.0))) + 1e-6


# ---- the MNIST contract -----------------------------------------------------------------


def mnist_reference(image: Image.Image) -> torch.Tensor:
    pixels_u8 = np.asarray(image)
    return normalize(torch.from_numpy(pixels_u8.astype(np.float32) / 255))[None]


def test_mnist_like_digit_is_taken_bit_exactly():
    image = mnist_like_ring()
    x = to_model_input(image)
    assert_model_input(x)
    assert torch.equal(x, mnist_reference(image))
    # The same numbers as the training pipeline's uint8 -> float -> normalise.
    as_training = (torch.from_numpy(np.array(image)).float() / 255 - 0.1307) / 0.3081
    assert torch.equal(x[0], as_training)


@pytest.mark.parametrize("shift", [(0, 0), (1, 1), (0, 1)])
def test_mnist_like_digits_in_place_are_bit_exact(shift):
    ring = np.roll(np.asarray(mnist_like_ring()), shift, axis=(0, 1))
    image = Image.fromarray(ring)
    assert torch.equal(to_model_input(image), mnist_reference(image))


def test_every_mnist_test_digit_is_bit_exact(mnist):
    _, test = mnist
    for digit in test.images.numpy():
        image = Image.fromarray(digit)
        assert torch.equal(to_model_input(image), mnist_reference(image))


def test_small_off_centre_digit_is_recentred():
    """A 28x28 picture that is not laid out like MNIST goes through the full recipe."""
    image = draw_seven((28, 28), (1, 1, 12, 14), 2, ink=255, paper=0)
    p = pixels(to_model_input(image))
    cy, cx = centre_of_mass(p)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert max(ink_box(p)) == 20


# ---- modes ------------------------------------------------------------------------------


def as_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` (L, dark on light) converted to ``mode`` the way files of that mode look."""
    if mode == "I;16":
        return Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(np.asarray(image).astype(np.int32) * 257)
    if mode == "F":
        return Image.fromarray(np.asarray(image).astype(np.float32) / 255)
    if mode == "P":
        return image.convert("RGB").quantize(colors=8)
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "I", "F", "1", "CMYK", "YCbCr", "LAB"])
def test_every_mode_gives_the_same_digit(mode, reference):
    image = as_mode(big_seven(), mode)
    assert image.mode == mode
    x = to_model_input(image)
    assert_model_input(x)
    assert similarity(x, reference) > 0.95


def test_sixteen_bit_png_round_trip(reference):
    buffer = io.BytesIO()
    as_mode(big_seven(), "I;16").save(buffer, format="PNG")
    image = Image.open(io.BytesIO(buffer.getvalue()))
    assert image.mode in ("I;16", "I")
    assert similarity(to_model_input(image), reference) > 0.95


def test_dim_sixteen_bit_image_is_stretched(reference):
    """A 16-bit picture using a small part of the range (a dark scan) still reads."""
    dim = Image.fromarray(np.asarray(big_seven()).astype(np.uint16) * 4 + 1000)
    assert similarity(to_model_input(dim), reference) > 0.95


# ---- transparency -----------------------------------------------------------------------


def canvas(stroke_rgb: tuple[int, int, int]) -> Image.Image:
    """Strokes of one colour on a fully transparent (0, 0, 0, 0) background, as a browser exports."""
    alpha = 255 - np.asarray(big_seven(size=(280, 280)))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., :3] = stroke_rgb
    rgba[..., 3] = alpha
    rgba[alpha == 0, :3] = 0
    return Image.fromarray(rgba)


@pytest.mark.parametrize("stroke", [(0, 0, 0), (255, 255, 255), (30, 60, 200)])
def test_transparent_canvas_drawing(stroke):
    image = canvas(stroke)
    assert image.mode == "RGBA"
    expected = to_model_input(big_seven(size=(280, 280)))
    assert similarity(to_model_input(image), expected) > 0.95


def test_palette_with_transparency():
    image = big_seven(size=(280, 280)).convert("RGB").quantize(colors=4)
    image.info["transparency"] = int(np.asarray(image)[0, 0])  # the paper's palette index
    expected = to_model_input(big_seven(size=(280, 280)))
    assert similarity(to_model_input(image), expected) > 0.95


def test_fully_transparent_image_is_refused():
    with pytest.raises(PreprocessError, match="transparent"):
        to_model_input(Image.new("RGBA", (100, 100), (0, 0, 0, 0)))


# ---- polarity, size, layout -------------------------------------------------------------


def test_polarity_both_ways_gives_the_same_input():
    dark_on_light = to_model_input(big_seven(dark_on_light=True))
    light_on_dark = to_model_input(big_seven(dark_on_light=False))
    assert similarity(dark_on_light, light_on_dark) > 0.98
    # Ink comes out bright, like MNIST: the digit's pixels are the minority.
    assert (pixels(dark_on_light) > 0.5).mean() < 0.3


@pytest.mark.parametrize(
    ("size", "at_least"),
    # A tiny picture holds a 7 of a few pixels: less detail survives the upscaling. A huge one is
    # box-reduced by another factor than the reference, which rounds the strokes' widths otherwise.
    [((6000, 4800), 0.94), ((1500, 1200), 0.95), ((40, 32), 0.85), ((20, 16), 0.7)],
)
def test_huge_and_tiny_pictures(size, at_least, reference):
    """The same 300x240 drawing scaled to a huge or a tiny picture."""
    x = to_model_input(big_seven().resize(size, Image.Resampling.BICUBIC))
    assert_model_input(x)
    assert similarity(x, reference) > at_least


@pytest.mark.parametrize("size", [(1, 1), (1, 500), (500, 1), (2, 3)])
def test_degenerate_sizes_do_not_crash(size):
    """Slivers and single pixels either give an input or a client error, never a crash."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=size[::-1], dtype=np.uint8))
    try:
        assert_model_input(to_model_input(image))
    except PreprocessError as err:
        assert str(err)


@pytest.mark.parametrize(
    "box", [(10, 10, 80, 150), (500, 20, 560, 150), (20, 400, 200, 580), (300, 300, 580, 580)], ids=str
)
def test_off_centre_digit_lands_centred_and_fits_20x20(box):
    image = draw_seven((600, 600), box, 8, ink=10, paper=240)
    p = pixels(to_model_input(image))
    cy, cx = centre_of_mass(p)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    height, width = ink_box(p, level=0.0)
    assert max(height, width) == 20
    # Aspect ratio kept: the box is (box height) : (box width).
    assert height / width == pytest.approx((box[3] - box[1]) / (box[2] - box[0]), rel=0.25)


def test_uneven_light_and_noise_are_suppressed(reference):
    """A 7 on paper with a strong shadow gradient and grain, JPEG-compressed."""
    rng = np.random.default_rng(0)
    grey = np.asarray(big_seven(size=(640, 480)), dtype=np.float32)
    ramp = np.linspace(0.45, 1.0, 640, dtype=np.float32)[None, :]
    photo = grey * ramp + rng.normal(0, 6, size=grey.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).convert("RGB").save(buffer, format="JPEG", quality=70)
    p = pixels(to_model_input(Image.open(buffer)))
    assert similarity(to_model_input(Image.open(buffer)), reference) > 0.9
    # Background clean: nothing outside the 20x20 digit box.
    assert max(ink_box(p, level=0.0)) == 20


def test_stray_speck_outside_the_digit_is_ignored(reference):
    image = big_seven()
    image.paste(0, (280, 220, 284, 224))  # a dust speck far from the 7
    assert similarity(to_model_input(image), reference) > 0.98


# ---- blank pictures ---------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 128, 255])
def test_uniform_image_is_blank(level):
    with pytest.raises(PreprocessError, match=BLANK):
        to_model_input(Image.new("L", (200, 150), level))


@pytest.mark.parametrize("size", [(28, 28), (1, 1), (300, 200)])
def test_black_image_is_blank(size):
    with pytest.raises(PreprocessError, match="blank"):
        to_model_input(Image.new("RGB", size))


@pytest.mark.parametrize("sigma", [2, 6])
def test_noise_only_is_blank(sigma):
    rng = np.random.default_rng(1)
    noise = np.clip(rng.normal(200, sigma, size=(480, 640)), 0, 255).astype(np.uint8)
    with pytest.raises(PreprocessError, match=BLANK):
        to_model_input(Image.fromarray(noise))


def test_faint_noise_on_black_28x28_is_blank():
    rng = np.random.default_rng(2)
    with pytest.raises(PreprocessError, match=BLANK):
        to_model_input(Image.fromarray(rng.integers(0, 12, size=(28, 28), dtype=np.uint8)))


def test_shadow_gradient_without_ink_is_blank():
    ramp = np.linspace(120, 240, 640, dtype=np.float32)[None, :].repeat(480, 0)
    with pytest.raises(PreprocessError, match=BLANK):
        to_model_input(Image.fromarray(ramp.astype(np.uint8)))


def test_dust_speck_on_blank_paper_is_not_a_digit():
    paper = Image.new("L", (640, 480), 225)
    paper.paste(40, (300, 200, 304, 204))  # a 4-pixel dark speck
    # Smaller than a pixel of the reduced picture the digit is looked for in: blank, or only a speck.
    with pytest.raises(PreprocessError, match="no digit found"):
        to_model_input(paper)


def test_empty_image_is_refused():
    with pytest.raises(PreprocessError, match="empty"):
        to_model_input(Image.new("L", (0, 0)))


def test_error_is_a_value_error_with_a_client_message():
    with pytest.raises(ValueError) as info:
        to_model_input(Image.new("L", (50, 50), 255))
    assert str(info.value).startswith(BLANK)


# ---- digits that fill the frame -----------------------------------------------------------


def framed_seven(height: int, stroke: int, dark_on_light: bool = True) -> Image.Image:
    """A 7 ``height`` pixels tall with ``stroke``-pixel strokes, a height's room on every side."""
    width = int(height * 0.7)
    ink, paper = (20, 235) if dark_on_light else (235, 20)
    box = (height, height, height + width, 2 * height)
    return draw_seven((width + 2 * height, 3 * height), box, stroke, ink, paper)


def crop_to_ink(image: Image.Image, dark_on_light: bool, margin: int = 0, cut: int = 0) -> Image.Image:
    """``image`` cropped to its ink plus ``margin`` pixels, minus ``cut`` rows of ink at the top and bottom."""
    a = np.asarray(image)
    inked = a < 128 if dark_on_light else a > 128
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    return image.crop((cols[0] - margin, rows[0] - margin + cut, cols[-1] + 1 + margin, rows[-1] + 1 + margin - cut))


def low_resolution(image: Image.Image, side: int) -> Image.Image:
    """``image`` shrunk to side x side and blown up to 64x64 with blur, like an upscaled thumbnail."""
    small = image.resize((side, side), Image.Resampling.BOX)
    return small.resize((64, 64), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(1))


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-ink", "light-ink"])
@pytest.mark.parametrize(("height", "stroke"), [(40, 8), (120, 22), (200, 40)])
@pytest.mark.parametrize(("margin", "cut"), [(0, 0), (2, 0), (0, 2)], ids=["tight", "margin-2", "cut-by-edges"])
def test_frame_filling_thick_digit_reads_as_with_room_around(height, stroke, margin, cut, dark_on_light):
    """Cropped to its ink (or past it), a thick digit gives the input it gives with room around it."""
    framed = framed_seven(height, stroke, dark_on_light)
    cropped = crop_to_ink(framed, dark_on_light, margin, cut)
    assert similarity(to_model_input(cropped), to_model_input(framed)) > 0.9


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-ink", "light-ink"])
@pytest.mark.parametrize(("side", "at_least"), [(8, 0.85), (12, 0.9), (16, 0.9)])
def test_low_resolution_blurred_digit_filling_the_frame(side, at_least, dark_on_light):
    framed = framed_seven(120, 16, dark_on_light)
    column = crop_to_ink(framed, dark_on_light, margin=8)
    square = Image.new("L", (column.height, column.height), 235 if dark_on_light else 20)
    square.paste(column, ((column.height - column.width) // 2, 0))
    assert similarity(to_model_input(low_resolution(square, side)), to_model_input(framed)) > at_least


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-ink", "light-ink"])
def test_picture_mostly_of_ink_keeps_its_polarity(dark_on_light):
    """A thick slanted stroke cropped to itself is more ink than background; the ink still comes out bright."""
    ink, paper = (20, 235) if dark_on_light else (235, 20)
    bar = Image.new("L", (60, 150), paper)
    ImageDraw.Draw(bar).line([(14, 150), (46, 0)], fill=ink, width=34)
    a = np.asarray(bar)
    assert ((a < 128) if dark_on_light else (a > 128)).mean() > 0.5
    framed = Image.new("L", (360, 450), paper)
    framed.paste(bar, (150, 150))
    assert similarity(to_model_input(bar), to_model_input(framed)) > 0.95


def stroke_width(p: np.ndarray) -> float:
    """Mean stroke width in pixels of a model input's intensities: twice the inked area over its outline."""
    b = p > 0.5
    outline = np.count_nonzero(b[1:] != b[:-1]) + np.count_nonzero(b[:, 1:] != b[:, :-1])
    return 2.0 * np.count_nonzero(b) / outline


def test_very_thick_strokes_are_thinned_towards_mnist():
    """Marker-thick strokes come out about as wide as MNIST's widest (its 95th percentile is 3 pixels)."""
    thick = framed_seven(200, 72)
    assert stroke_width(pixels(to_model_input(thick))) < 3.6
    assert stroke_width(pixels(to_model_input(framed_seven(200, 16)))) < 2.6  # ordinary strokes are left alone


def test_close_up_photo_with_a_shadow_still_reads(reference):
    """A 7 spanning most of a photo's height, under a strong shadow: the background map stays."""
    rng = np.random.default_rng(3)
    image = draw_seven((400, 300), (120, 30, 250, 250), 12, ink=20, paper=235)
    ramp = np.linspace(0.4, 1.0, 400, dtype=np.float32)[None, :]
    photo = np.asarray(image, dtype=np.float32) * ramp + rng.normal(0, 4, size=(300, 400))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=80)
    expected = to_model_input(draw_seven((400, 300), (120, 30, 250, 250), 12, ink=20, paper=235))
    assert similarity(to_model_input(Image.open(buffer)), expected) > 0.9


# ---- blank must mean blank ----------------------------------------------------------------


@pytest.mark.parametrize("contrast", [0.13, 0.2, 0.3])
@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-ink", "light-ink"])
@pytest.mark.parametrize("finish", ["clean", "grain", "jpeg"])
def test_faint_but_visible_digit_is_not_blank(contrast, dark_on_light, finish, reference):
    """Ink 13% of the range away from the paper is plain to see: it is read, not refused as blank."""
    paper = 235 if dark_on_light else 20
    ink = round(paper - contrast * 255) if dark_on_light else round(paper + contrast * 255)
    grey = np.asarray(big_seven(), dtype=np.float32)
    grey = paper + (grey - 235) / (20 - 235) * (ink - paper)  # big_seven's 235/20 mapped to paper/ink
    if finish != "clean":
        grey += np.random.default_rng(4).normal(0, 2, size=grey.shape)
    image = Image.fromarray(np.clip(np.round(grey), 0, 255).astype(np.uint8))
    if finish == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        image = Image.open(buffer)
    assert similarity(to_model_input(image), reference) > 0.95
