"""Photographs that are not digits, cropped: the not-a-digit check's example of what a camera sees.

Fashion-MNIST's clothes and the rendered scenes do not teach the check what crops of real photographs
look like once preprocessed: blurred blobs, foliage, textures, edges of objects. The calibration fits
on square crops (15-70% of the shorter side, half of them halved again, JPEG-compressed as a phone
would) of the photographs in one folder: ``--photos-dir`` or ``PHOTOS_DIR``, else the nature
wallpapers of Debian's ``mate-backgrounds`` (``/usr/share/backgrounds/mate/nature``). None of them
is among the photographs the check is measured on (:mod:`scripts.accuracy.photos`).
"""

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from train.renderers.strokes import encode

DEBIAN_DIR = Path("/usr/share/backgrounds/mate/nature")
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
INSTALL_HINT = "set PHOTOS_DIR to a folder of photographs, or `apt-get install mate-backgrounds`"
LONG_SIDE = 1024  # photographs are cropped from a copy this large: wallpapers are several megapixels


def listing(folder: str | os.PathLike) -> list[Path]:
    """The pictures of ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())


def find_photographs(directory: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """(folder, digest of its pictures' names and sizes) or (None, why there is none).

    ``directory`` or ``$PHOTOS_DIR`` when given (an error if it holds no pictures), else Debian's folder.
    """
    chosen = directory or os.environ.get("PHOTOS_DIR")
    folder = Path(chosen) if chosen else DEBIAN_DIR
    files = listing(folder) if folder.is_dir() else []
    if not files:
        return None, f"no photographs in {folder}: {INSTALL_HINT}"
    digest = hashlib.sha256("".join(f"{p.name}:{p.stat().st_size}\n" for p in files).encode())
    return folder, digest.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _reduced(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.draft("RGB", (LONG_SIDE, LONG_SIDE))
        image = image.convert("RGB")
    image.thumbnail((LONG_SIDE, LONG_SIDE))
    return image


def crop(files: list[Path], seed: int) -> bytes:
    """One square crop of one of ``files`` as JPEG bytes; the same seed, the same crop."""
    rng = np.random.default_rng(seed)
    image = _reduced(str(files[int(rng.integers(len(files)))]))
    side = min(min(image.size), max(28, int(min(image.size) * rng.uniform(0.15, 0.7))))
    left, top = int(rng.integers(0, image.width - side + 1)), int(rng.integers(0, image.height - side + 1))
    picture = image.crop((left, top, left + side, top + side))
    if rng.random() < 0.5 and side >= 56:
        picture = picture.resize((side // 2, side // 2), Image.Resampling.BOX)
    return encode(picture, "JPEG", quality=int(rng.integers(70, 95)))
