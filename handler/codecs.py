"""Faster decoders for the two formats people send, pixel for pixel what Pillow decodes.

PNG goes through libpng (imagecodecs), whose inflating and unfiltering cost a fraction of
Pillow's on pictures of a few hundred pixels a side; JPEG through libjpeg-turbo's DCT scaling
(simplejpeg) at the scale Pillow's draft chose, without Pillow's per-call machinery. Every
other format and mode, and any file these refuse, is left to Pillow, which then says what is
wrong with it.
"""

from __future__ import annotations

import imagecodecs
import numpy as np
import simplejpeg
from PIL import Image

# PNG raw modes (the file's colour type and bit depth) decoded here, and the mode each gives.
_PNG_MODES = {"L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "I;16B": "I;16"}
_CHANNELS = {"L": 1, "I;16": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def decode(image: Image.Image, data: bytes) -> Image.Image | None:
    """``image`` (opened, drafted, not loaded; ``data`` its file) decoded, or None when Pillow should.

    The result carries the opened image's ``info`` (EXIF orientation included).
    """
    try:
        if image.format == "PNG":
            decoded = _png(image, data)
        elif image.format == "JPEG":
            decoded = _jpeg(image, data)
        else:
            return None
    except MemoryError:
        raise
    except Exception:  # a file these libraries refuse: Pillow decodes it or says why it cannot
        return None
    if decoded is not None:
        decoded.info = image.info
    return decoded


def _png(image: Image.Image, data: bytes) -> Image.Image | None:
    if len(image.tile) != 1 or "transparency" in image.info or getattr(image, "is_animated", False):
        return None
    mode = _PNG_MODES.get(image.tile[0].args)
    if mode is None or mode != image.mode:  # palettes, bit depths below 8, 16-bit colour
        return None
    pixels = imagecodecs.png_decode(data)
    width, height = image.size
    expected = (height, width) if _CHANNELS[mode] == 1 else (height, width, _CHANNELS[mode])
    if pixels.shape != expected or pixels.dtype != (np.uint16 if mode == "I;16" else np.uint8):
        return None
    return Image.fromarray(pixels)


def _jpeg(image: Image.Image, data: bytes) -> Image.Image | None:
    if image.mode != "L":  # drafted to greyscale: L and RGB files; CMYK is left to Pillow
        return None
    scale = image.decoderconfig[0] if image.decoderconfig else 1
    width, height = image.size
    # The largest factor that keeps the drafted size is the drafted scale itself.
    pixels = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=scale, min_width=width, min_height=height)
    if pixels.shape != (height, width, 1):
        return None
    return Image.frombuffer("L", (width, height), np.ascontiguousarray(pixels[..., 0]), "raw", "L", 0, 1)
