"""Fashion-MNIST (pictures of clothes in MNIST's format), the not-a-digit check's example of non-digits.

Debian's ``dataset-fashion-mnist`` package puts the four gzipped IDX files in
``/usr/share/datasets/fashion-mnist``; ``FASHION_MNIST_DIR`` or ``--fashion-dir`` point elsewhere.
Only the training split is ever fitted on; the test split is for the figures.
"""

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
INSTALL_HINT = "install it with `apt-get install dataset-fashion-mnist` or set FASHION_MNIST_DIR"


def fashion_dir(directory: str | os.PathLike | None = None) -> Path:
    """``directory``, else ``$FASHION_MNIST_DIR``, else Debian's location."""
    return Path(directory or os.environ.get("FASHION_MNIST_DIR") or DEFAULT_DIR)


def available(directory: str | os.PathLike | None = None) -> bool:
    root = fashion_dir(directory)
    return all((root / f"{name}.gz").is_file() or (root / name).is_file() for name in FILES.values())


def load_fashion(split: str, directory: str | os.PathLike | None = None) -> np.ndarray:
    """The (N, 28, 28) uint8 images of ``split`` ("train" or "test"); FileNotFoundError says how to get them."""
    root = fashion_dir(directory)
    name = FILES[split]
    path = next((p for p in (root / f"{name}.gz", root / name) if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"Fashion-MNIST is not in {root}: {INSTALL_HINT}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = (int.from_bytes(data[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051 or len(data) != 16 + count * rows * cols:
        raise ValueError(f"{path} is not an IDX image file")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)
