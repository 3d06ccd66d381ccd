"""Regenerate ``samples/``: a few small example pictures to curl at the server.

MNIST test digits as 28x28 PNGs, the same kind of digits rendered as users
send them (photo, transparent canvas, 16-bit and palette scans, a large
drawing, small pictures) and one blank picture for the error case. The true
digit starts each file name (``3_photo.jpg``). Every file stays under 30 KB.

    python -m scripts.samples.make            # needs MNIST_DIR or data/
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from train.renderers.user_style import render

MAX_BYTES = 30_000
# (MNIST test index, style or "mnist", file suffix). Indices picked for digits people write plainly.
SAMPLES = [
    (0, "mnist", "mnist.png"),
    (1, "mnist", "mnist.png"),
    (2, "mnist", "mnist.png"),
    (32, "photo", "photo.jpg"),
    (4, "canvas", "canvas.png"),
    (8, "scan", "scan16.png"),
    (7, "scan", "scan_palette.png"),
    (11, "paper", "paper.png"),
    (3, "inverted-small", "inverted_small.png"),
    (61, "offcentre", "offcentre.png"),
]


def shrink(image: Image.Image, long_side: int) -> Image.Image:
    """``image`` scaled down to ``long_side`` (16-bit kept 16-bit)."""
    scale = long_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if image.mode == "I;16":
        small = image.convert("I").resize(size, Image.Resampling.LANCZOS)
        return Image.fromarray(np.clip(np.asarray(small), 0, 65535).astype(np.uint16))
    if image.mode == "P":
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS).quantize(colors=16)
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_small(image: Image.Image, fmt: str) -> bytes:
    """Encode, shrinking (and for JPEG lowering the quality) until it is under MAX_BYTES."""
    for long_side in (max(image.size), 640, 480, 360, 240, 160, 120):
        small = shrink(image, long_side)
        for quality in (85, 75, 65) if fmt == "JPEG" else (None,):
            buffer = io.BytesIO()
            small.save(buffer, format=fmt, **({"quality": quality} if quality else {"optimize": True}))
            if buffer.tell() < MAX_BYTES:
                return buffer.getvalue()
    raise RuntimeError(f"cannot fit a {image.mode} {image.size} sample under {MAX_BYTES} bytes")


def scan_of_mode(digit: np.ndarray, mode: str) -> Image.Image:
    """A scan render in ``mode`` ("I;16" or "P"): the scan style picks one at random per seed."""
    for seed in range(100):
        image = render(digit, "scan", seed)
        if image.mode == mode:
            return image
    raise RuntimeError(f"no scan render in mode {mode}")


def blank() -> Image.Image:
    """Off-white paper with faint grain and no ink."""
    rng = np.random.default_rng(0)
    return Image.fromarray(np.clip(rng.normal(228, 2, size=(90, 120)), 0, 255).astype(np.uint8))


def make_samples(images: np.ndarray, labels: np.ndarray, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, style, suffix in SAMPLES:
        digit = images[index]
        if style == "mnist":
            image = Image.fromarray(digit)
        elif suffix.startswith("scan"):
            image = scan_of_mode(digit, "I;16" if suffix == "scan16.png" else "P")
        else:
            image = render(digit, style, index)
        path = out / f"{int(labels[index])}_{suffix}"
        path.write_bytes(encode_small(image, "JPEG" if suffix.endswith(".jpg") else "PNG"))
        written.append(path)
    path = out / "blank.png"
    path.write_bytes(encode_small(blank(), "PNG"))
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.samples.make", description="Regenerate the example pictures in samples/ from MNIST."
    )
    parser.add_argument("--out", default="samples", help="folder to write into (default: %(default)s)")
    parser.add_argument("--data-dir", help="local MNIST IDX copy (default: $MNIST_DIR, else data/ or download)")
    args = parser.parse_args(argv)
    from train.data import load_mnist_or_report

    if (splits := load_mnist_or_report(args.data_dir)) is None:
        return 1
    test = splits[1]
    try:
        written = make_samples(test.images.numpy(), test.labels.numpy(), Path(args.out))
    except OSError as err:
        print(f"error: cannot write to {args.out}: {err}", file=sys.stderr)
        return 1
    for path in written:
        image = Image.open(path)
        print(f"{path}  {image.format} {image.mode} {image.size[0]}x{image.size[1]}  {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
