"""The faster PNG decoder gives Pillow's pixels, orientation and errors (handler.codecs)."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from handler.codecs import MIN_PIXELS
from handler.decode import RequestError, decode_image
from handler.preprocess import draft

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(7)


def picture(mode: str, size=(173, 91)) -> Image.Image:
    """Noise over a gradient, so every pixel differs and a shift or a swap of rows shows."""
    width, height = size
    ramp = np.linspace(0, 1, width * height).reshape(height, width)
    if mode == "I;16":
        return Image.fromarray((ramp * 60000 + RNG.integers(0, 5000, (height, width))).astype(np.uint16))
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = (ramp[..., None] * 200 + RNG.integers(0, 55, (height, width, bands))).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if bands == 1 else pixels, "L" if bands == 1 else None).convert(mode)


def encoded(image: Image.Image, fmt: str, orientation: int | None = None, **options) -> bytes:
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pillow_decode(data: bytes) -> Image.Image:
    """What the handler decoded before the faster libraries: Pillow alone."""
    image = Image.open(io.BytesIO(data))
    draft(image)
    image.load()
    return ImageOps.exif_transpose(image)


def assert_same(data: bytes) -> Image.Image:
    decoded, expected = decode_image(data), pillow_decode(data)
    assert (decoded.mode, decoded.size) == (expected.mode, expected.size)
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))
    return decoded


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("interlace", [False, True])
def test_png_decodes_as_pillow_does_and_by_libpng(mode, interlace):
    decoded = assert_same(encoded(picture(mode), "PNG", interlace=interlace))
    assert not isinstance(decoded, ImageFile.ImageFile)  # the faster decoder did it, not Pillow


@pytest.mark.parametrize("mode", ["L", "LA", "I;16", "P", "1"])
def test_greyscale_palette_and_bilevel_pngs_stay_with_pillow(mode):
    decoded = assert_same(encoded(picture(mode), "PNG"))
    assert isinstance(decoded, ImageFile.ImageFile)


def test_png_with_a_transparent_colour_stays_with_pillow():
    data = encoded(picture("RGB"), "PNG", transparency=(0, 0, 0))
    assert "transparency" in assert_same(data).info


def test_small_pngs_stay_with_pillow():
    side = int(MIN_PIXELS**0.5) - 1
    assert isinstance(assert_same(encoded(picture("RGB", (side, side)), "PNG")), ImageFile.ImageFile)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_stays_with_pillow_at_its_drafted_scale(mode):
    decoded = assert_same(encoded(picture(mode, (640, 480)), "JPEG", quality=90))
    assert isinstance(decoded, ImageFile.ImageFile) and decoded.size == (160, 120)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_to_png_and_jpeg(fmt, orientation):
    image = picture("RGB", (320, 160))
    decoded = assert_same(encoded(image, fmt, orientation))
    wide = orientation == 3
    assert (decoded.width > decoded.height) == wide
    assert decoded.getexif().get(0x0112) in (None, 1)


def test_png_orientation_written_after_the_pixels_is_applied():
    """An eXIf chunk after the image data (allowed by some writers) is only read by Pillow's load."""
    data = encoded(picture("RGB", (320, 160)), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    payload = exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    end = data.rindex(b"IEND") - 4
    decoded = assert_same(data[:end] + chunk + data[end:])
    assert decoded.size == (160, 320)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_truncated_pngs_are_the_same_client_error_as_with_pillow(mode):
    data = encoded(picture(mode, (300, 200)), "PNG")
    broken = data[: len(data) // 2]
    with pytest.raises(RequestError, match="truncated or corrupt"):
        decode_image(broken)
    with pytest.raises(OSError):
        pillow_decode(broken)
