"""Fashion-MNIST (pictures of clothes in MNIST's format), the not-a-digit check's example of non-digits.

Loaded with ``torchvision.datasets.FashionMNIST`` from ``<root>/FashionMNIST/raw``. A local copy of
the four IDX files (``--fashion-dir`` or ``FASHION_MNIST_DIR``, else Debian's ``dataset-fashion-mnist``
folder ``/usr/share/datasets/fashion-mnist``), gzipped or not, is linked or unpacked there;
without one, torchvision downloads it. Only the training split is ever fitted on; the test split
is for the figures.
"""

import gzip
import os
import shutil
from pathlib import Path

import numpy as np

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_ROOT = Path("data")
IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
INSTALL_HINT = (
    "online, torchvision downloads it; offline, set FASHION_MNIST_DIR or `apt-get install dataset-fashion-mnist`"
)


class FashionUnavailable(RuntimeError):
    """No local copy and no download: the message says where it looked and what to do."""


def local_dirs(directory: str | os.PathLike | None = None) -> list[Path]:
    """Where a local copy is looked for, in order: ``directory`` or ``$FASHION_MNIST_DIR``, then Debian's folder."""
    chosen = directory or os.environ.get("FASHION_MNIST_DIR")
    return [Path(chosen), DEBIAN_DIR] if chosen else [DEBIAN_DIR]


def _has_copy(folder: Path) -> bool:
    return all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in IDX_NAMES)


def _install(folder: Path, raw: Path) -> None:
    """Link the plain IDX files of ``folder`` into ``raw``, unpack the gzipped ones there."""
    raw.mkdir(parents=True, exist_ok=True)
    for name in IDX_NAMES:
        target, plain, packed = raw / name, folder / name, folder / f"{name}.gz"
        target.unlink(missing_ok=True)  # a link or copy from another source
        if plain.is_file():
            target.symlink_to(plain.resolve())
            continue
        part = raw / f"{name}.part"
        with gzip.open(packed) as fin, open(part, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        part.rename(target)


def prepare(directory: str | os.PathLike | None = None, root: str | os.PathLike = DEFAULT_ROOT) -> str:
    """Make ``FashionMNIST(root)`` loadable; return where the files came from (a folder, or "download").

    A local copy wins over the cache and the download, so what is fitted on is what was asked for.
    """
    raw = Path(root) / "FashionMNIST" / "raw"
    for folder in local_dirs(directory):
        if _has_copy(folder):
            source = raw / ".source"
            if not (source.is_file() and source.read_text() == str(folder.resolve()) and _has_copy(raw)):
                _install(folder, raw)
                source.write_text(str(folder.resolve()))
            return str(folder)
    try:
        _fashion_mnist()(root, train=True, download=True)
        return "download"
    except Exception as err:  # torchvision raises URLError, RuntimeError, OSError...
        looked = " or ".join(str(d) for d in local_dirs(directory))
        raise FashionUnavailable(
            f"Fashion-MNIST is not in {looked} and could not be downloaded ({type(err).__name__}): {INSTALL_HINT}"
        ) from None


def load_fashion(
    split: str, directory: str | os.PathLike | None = None, root: str | os.PathLike = DEFAULT_ROOT
) -> np.ndarray:
    """The (N, 28, 28) uint8 images of ``split`` ("train" or "test"); :class:`FashionUnavailable` if none."""
    prepare(directory, root)
    return _fashion_mnist()(root, train=split == "train", download=False).data.numpy()


def try_load_fashion(
    split: str, directory: str | os.PathLike | None = None, root: str | os.PathLike = DEFAULT_ROOT
) -> tuple[np.ndarray | None, str]:
    """(images, where they came from) or (None, why there are none)."""
    try:
        source = prepare(directory, root)
        return _fashion_mnist()(root, train=split == "train", download=False).data.numpy(), source
    except (FashionUnavailable, RuntimeError, OSError, ValueError) as err:
        return None, str(err)


def _fashion_mnist():
    """torchvision's FashionMNIST, imported when the data is read (see ``train.data._mnist``)."""
    from torchvision.datasets import FashionMNIST

    return FashionMNIST
