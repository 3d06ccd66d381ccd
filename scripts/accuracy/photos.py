"""Real photographs that are not digits, for measuring the not-a-digit check: never fitted on.

The photographs scikit-image ships inside its wheel (``skimage/data``: no download), each whole and
as square crops of 15-70% of its shorter side, plus its ``lfw_subset``: 200 small grey photographs
(100 faces, 100 crops of other photographs). Drawings, test charts and text pages of that folder are
left out: only photographs count. None of these pictures is in any set the check is fitted on.

    from scripts.accuracy.photos import photo_files
    files = photo_files()  # [(name, JPEG bytes)], reproducible
"""

import importlib.resources
import io

import numpy as np
from PIL import Image

# skimage/data's photographs: people, animals, objects, scenes, surfaces, microscopy and telescope images.
PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "rocket.jpg",
)
CROPS = 24  # per photograph, besides the whole of it


def _data_dir():
    try:
        return importlib.resources.files("skimage") / "data"
    except ModuleNotFoundError:
        return None


def available() -> bool:
    data = _data_dir()
    return data is not None and all((data / name).is_file() for name in PHOTOS)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photo_files(crops: int = CROPS, seed: int = 0) -> list[tuple[str, bytes]]:
    """[(name, JPEG bytes)]: every photograph whole, ``crops`` square crops of each, and lfw_subset's 200."""
    data = _data_dir()
    rng = np.random.default_rng(seed)
    files = []
    for name in PHOTOS:
        with (data / name).open("rb") as f:
            photo = Image.open(f)
            photo.load()
        files.append((name, _jpeg(photo, 90)))
        short = min(photo.size)
        for n in range(crops):
            side = int(short * rng.uniform(0.15, 0.7))
            left = int(rng.integers(0, photo.width - side + 1))
            top = int(rng.integers(0, photo.height - side + 1))
            crop = photo.crop((left, top, left + side, top + side))
            files.append((f"{name}:crop{n}", _jpeg(crop, int(rng.integers(70, 95)))))
    with (data / "lfw_subset.npy").open("rb") as f:
        small = np.load(f)  # (200, 25, 25) floats in [0, 1]
    for n, pixels in enumerate(small):
        files.append((f"lfw_subset:{n}", _jpeg(Image.fromarray(np.round(pixels * 255).astype(np.uint8)), 95)))
    return files
