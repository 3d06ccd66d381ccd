"""The loads: which sample pictures wrk sends, and which the in-process ceiling decodes.

- ``pngs``: every sample PNG but the blank one (MNIST-style digits and PNG scans, canvas, paper);
- ``mnist``: the MNIST-style 28x28 PNGs only;
- ``real``: the pictures people send: the photo, the canvas, the scans, the paper drawing, the small
  inverted and the off-centre picture (no MNIST-style digit);
- ``photo``: the phone photo ``3_photo.jpg`` alone (480x640 JPEG).
"""

from pathlib import Path

from scripts.serving.errors import ServeError
from scripts.serving.paths import SAMPLES
from scripts.serving.warmup import sample_bodies


def _real(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*.*")) if p.suffix in (".png", ".jpg") and _is_real(p.stem)]


def _is_real(stem: str) -> bool:
    return "mnist" not in stem and not stem.startswith("blank")


LOADS = {
    "pngs": sample_bodies,
    "mnist": lambda folder: sorted(folder.glob("*_mnist.png")),
    "real": _real,
    "photo": lambda folder: [folder / "3_photo.jpg"],
}
DEFAULT_LOADS = ("pngs", "real")


def load_bodies(name: str, folder: Path = SAMPLES) -> list[Path]:
    """The picture files of load ``name``; a one-line error when samples/ lacks them."""
    if name not in LOADS:
        raise ServeError(f"unknown load {name!r}: choose from {', '.join(LOADS)}")
    paths = [p for p in LOADS[name](Path(folder)) if p.is_file()]
    if not paths:
        raise ServeError(f"no pictures for load {name!r} in {folder} (run `make samples`)")
    return paths
