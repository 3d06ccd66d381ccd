"""A faster PNG decoder, pixel for pixel what Pillow decodes.

libpng (through imagecodecs) decodes an 8-bit colour PNG of a few hundred pixels a side in a
fraction of Pillow's time. Small pictures, greyscale, palettes, 16-bit colour, transparent
colours, animations and every other format are left to Pillow (a JPEG already decodes at a
small DCT scale there), as is any file libpng refuses: Pillow then says what is wrong with it.
"""

from __future__ import annotations

import imagecodecs
import numpy as np
from PIL import Image

# PNG raw modes (colour type and bit depth) decoded here: 8-bit colour, where libpng is much faster
# than Pillow; on greyscale PNGs the two are even.
_CHANNELS = {"RGB": 3, "RGBA": 4}
# Below this many pixels Pillow's decoder costs no more: the calls around it dominate.
MIN_PIXELS = 96 * 96


def decode(image: Image.Image, data: bytes) -> Image.Image | None:
    """``image`` (opened, not loaded; ``data`` its file) decoded, or None when Pillow should decode it.

    The result carries the opened image's ``info`` (EXIF orientation included).
    """
    if image.format != "PNG" or image.width * image.height < MIN_PIXELS:
        return None
    try:
        decoded = _png(image, data)
    except MemoryError:
        raise
    except Exception:  # a file libpng refuses: Pillow decodes it or says why it cannot
        return None
    if decoded is not None:
        decoded.info = image.info
    return decoded


def _png(image: Image.Image, data: bytes) -> Image.Image | None:
    if len(image.tile) != 1 or "transparency" in image.info or getattr(image, "is_animated", False):
        return None
    # Metadata after the pixels (an orientation among it) is only read by Pillow's own load.
    if (b"eXIf" in data and "exif" not in image.info) or (b"XML:com.adobe.xmp" in data and "xmp" not in image.info):
        return None
    mode = image.tile[0].args
    if mode not in _CHANNELS or mode != image.mode:  # greyscale, palettes, 16-bit colour
        return None
    pixels = imagecodecs.png_decode(data)
    width, height = image.size
    if pixels.shape != (height, width, _CHANNELS[mode]) or pixels.dtype != np.uint8:
        return None
    return Image.fromarray(pixels)
