"""A decoded picture as grey in [0, 1], read box-reduced by any integer factor, whole or one region
(step 1 of :mod:`handler.preprocess`'s recipe).

Greying runs once at full size in Pillow's single C passes (a palette through its luma table,
alpha split off and premultiplied); the float work then happens on the reduced pixels only. The
preprocessing reads the whole picture small to find the digit, then only the digit's region at the
resolution the layout needs.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops

from handler.ink import PreprocessError

# ITU-R 601-2 luma, as Pillow's "L" conversion.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_SCALE = np.float32(1 / 255)


def draft(image: Image.Image, side: int) -> None:
    """Let a JPEG not loaded yet decode straight to small greyscale (DCT scaling: several times faster).

    The scale (1/2, 1/4 or 1/8) is the smallest that keeps the longer side at ``side`` pixels or
    more. Call it right after ``Image.open`` and before anything that loads the pixels
    (``ImageOps.exif_transpose`` does); it does nothing to other formats or to loaded images.
    """
    if image.format == "JPEG" and image.mode in ("L", "RGB"):
        width, height = image.size
        scale = max(1, min(8, max(width, height) // side))
        # Pillow picks the largest power of two at most min(width // w, height // h).
        image.draft("L", (max(1, width // scale), max(1, height // scale)))


class GreySource:
    """One decoded picture, greyed once, read box-reduced (:meth:`read`)."""

    def __init__(self, image: Image.Image):
        self.size = image.size
        self.background = None  # behind transparent pixels: decided on the first whole read
        mode = image.mode
        self.scale = 255.0
        if mode in ("L", "RGB", "1") or (mode == "P" and "transparency" not in image.info):
            self.kind, self.planes = "plain", (_luma(image),)
        elif mode in ("LA", "RGBA", "PA") or (mode == "P" and "transparency" in image.info):
            if mode == "P":
                image = image.convert("RGBA")
            alpha = image.getchannel("A")
            # Premultiplied luma, as compositing weighs it: reduced, it stays right at the edges.
            luma = _luma(image.convert("RGB") if mode == "PA" else image)
            self.kind, self.planes = "alpha", (ImageChops.multiply(luma, alpha), alpha)
        else:
            reducible, self.scale = _reducible(image)
            self.kind, self.planes = reducible.mode, (reducible,)

    def factor(self, side: int) -> int:
        """The reduction that brings the longer side closest to ``side`` pixels (2/3 to 4/3 of it)."""
        return max(1, round(max(self.size) / side))

    def read(self, factor: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Float32 grey in [0, 1] of the whole picture or ``box`` (left, top, right, bottom), reduced by ``factor``.

        Each output pixel is the mean of a ``factor`` x ``factor`` cell (clipped at the edges).
        """
        planes = [p.reduce(factor, box) if factor > 1 or box else p for p in self.planes]
        if self.kind == "plain":
            return _floats(planes[0])
        if self.kind == "alpha":
            return self._composite(_floats(planes[0]), _floats(planes[1]))
        image = planes[0]
        if self.kind in ("I", "F"):
            grey = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=self.scale, neginf=0.0)
            scale = self.scale
            if self.kind == "I" and scale == 255.0 and grey.max() > 255:
                scale = 65535.0
            if self.kind == "F" and grey.max() <= 1.0:
                scale = 1.0
            return np.clip(grey / scale, 0.0, 1.0)
        if self.kind == "RGB":
            return _floats(image.convert("L"))
        pixels = _floats(image)
        if self.kind == "L":
            return pixels
        # Premultiplied alpha ("La"/"RGBa"): grey = luma_p + (1 - alpha) * background.
        return self._composite(pixels[..., 0] if self.kind == "La" else pixels[..., :3] @ _LUMA, pixels[..., -1])

    def _composite(self, luma_p: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Premultiplied luma over a background that contrasts with the opaque pixels."""
        if self.background is None:
            coverage = float(alpha.sum())
            if coverage == 0:
                raise PreprocessError("no digit found in the image: it is fully transparent")
            self.background = 1.0 if luma_p.sum() / coverage < 0.5 else 0.0
        return luma_p + (1.0 - alpha) * self.background


def _floats(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) * _SCALE


def _luma(image: Image.Image) -> Image.Image:
    """``image`` as mode L; a palette picture through its palette's luma (a table look-up per pixel)."""
    if image.mode == "L":
        return image
    if image.mode == "P":
        rgb = np.zeros((256, 3), dtype=np.float32)
        entries = np.asarray(image.getpalette("RGB") or [], dtype=np.float32).reshape(-1, 3)[:256]
        rgb[: len(entries)] = entries
        table = np.round(rgb @ _LUMA).astype(np.uint8).tolist()
        return Image.frombuffer("L", image.size, image.tobytes(), "raw", "L", 0, 1).point(table)
    return image.convert("L")


def _reducible(image: Image.Image) -> tuple[Image.Image, float]:
    """``image`` in a mode Image.reduce handles, and the value of full intensity."""
    mode = image.mode
    if mode in ("L", "RGB", "La", "RGBa"):
        return image, 255.0
    if mode.startswith("I;16"):
        return image.convert("I"), 65535.0
    if mode in ("I", "F"):
        return image, 255.0
    if "A" in image.getbands():
        return image.convert("RGBA").convert("RGBa"), 255.0
    try:
        return image.convert("RGB"), 255.0  # CMYK, YCbCr, HSV, ...
    except ValueError:
        return image.getchannel(0), 255.0  # e.g. LAB: its first band is the lightness
