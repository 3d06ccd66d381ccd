"""MNIST as in-memory tensors, from torchvision's download or a local IDX copy.

A local copy (``MNIST_DIR`` or ``--data-dir``) holds the four standard IDX
files, gzipped or raw. They are checked and unpacked into the layout
torchvision expects (``<root>/MNIST/raw``), so both paths end in the same
``torchvision.datasets.MNIST`` loader.
"""

import argparse
import gzip
import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

DEFAULT_ROOT = Path("data")
# SHA-256 of the uncompressed files, so any gzip of the same data passes.
IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
IDX_NAMES = list(IDX_SHA256)  # torchvision's MNIST.resources, without .gz


def _mnist():
    """torchvision's MNIST, imported when the data is read: importing torchvision takes seconds, and
    the calibration's worker processes import this module without reading MNIST."""
    from torchvision.datasets import MNIST

    return MNIST


class DataError(RuntimeError):
    """The data set is missing or damaged; the message says what to do."""


@dataclass
class Split:
    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _install_local_copy(source: Path, raw_dir: Path) -> None:
    """Verify the IDX files in ``source`` and unpack them into ``raw_dir``."""
    if not source.is_dir():
        raise DataError(
            f"MNIST data dir {source} does not exist: set MNIST_DIR or --data-dir to the folder with the four IDX files"
        )
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in IDX_NAMES:
        target = raw_dir / name
        if target.is_file() and _sha256(target) == IDX_SHA256[name]:
            continue
        gz, plain = source / f"{name}.gz", source / name
        part = raw_dir / f"{name}.part"
        try:
            if gz.is_file():
                with gzip.open(gz) as fin, open(part, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            elif plain.is_file():
                shutil.copyfile(plain, part)
            else:
                raise DataError(
                    f"{source} has no {name}(.gz): MNIST_DIR/--data-dir must hold the four standard MNIST IDX files"
                )
        except (OSError, EOFError) as err:
            part.unlink(missing_ok=True)
            raise DataError(f"cannot read {name} from {source}: {err}") from None
        if _sha256(part) != IDX_SHA256[name]:
            part.unlink()
            raise DataError(f"{name} from {source} fails its checksum: the file is damaged or not MNIST's")
        part.rename(target)


def _load_split(root: Path, train: bool) -> Split:
    ds = _mnist()(root, train=train, download=False)
    return Split(ds.data.contiguous(), ds.targets.long())


def load_mnist(
    data_dir: str | os.PathLike | None = None, root: str | os.PathLike = DEFAULT_ROOT
) -> tuple[Split, Split]:
    """Return (train, test) MNIST splits as uint8 images and int64 labels.

    ``data_dir`` (default: ``$MNIST_DIR``) is a local copy of the IDX files;
    without one, torchvision downloads MNIST into ``root``.
    """
    root = Path(root)
    data_dir = data_dir or os.environ.get("MNIST_DIR")
    raw_dir = root / "MNIST" / "raw"
    if data_dir:
        _install_local_copy(Path(data_dir), raw_dir)
    else:
        try:
            _mnist()(root, train=True, download=True)
        except Exception as err:  # torchvision raises RuntimeError/URLError/OSError
            raise DataError(
                f"MNIST is not in {raw_dir} and could not be downloaded ({type(err).__name__}): "
                "set MNIST_DIR (or --data-dir) to a folder with the four MNIST IDX files"
            ) from None
    try:
        return _load_split(root, True), _load_split(root, False)
    except (RuntimeError, ValueError, OSError) as err:
        raise DataError(f"cannot read MNIST from {raw_dir}: {err}") from None


def load_mnist_or_report(
    data_dir: str | os.PathLike | None = None, root: str | os.PathLike = DEFAULT_ROOT
) -> tuple[Split, Split] | None:
    """:func:`load_mnist` for a command's ``main``: None after printing the one-line error."""
    try:
        return load_mnist(data_dir, root)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.data", description="Fetch or install MNIST and report what is there."
    )
    parser.add_argument("--data-dir", help="local copy of the MNIST IDX files (default: $MNIST_DIR, else download)")
    parser.add_argument(
        "--root", default=str(DEFAULT_ROOT), help="where the unpacked data set lives (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if (splits := load_mnist_or_report(args.data_dir, args.root)) is None:
        return 1
    train, test = splits
    print(f"MNIST ready in {Path(args.root) / 'MNIST'}: {len(train)} training and {len(test)} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
