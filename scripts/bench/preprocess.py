"""Micro-benchmark: microseconds per picture to decode and to preprocess, per sample file (JSON).

    python -m scripts.bench.preprocess                      # every file in samples/
    python -m scripts.bench.preprocess a.jpg b.png --plot reports/preprocess_us.png

Decoding is timed as the server does it (open, JPEG draft, EXIF transpose,
load); preprocessing is :func:`handler.preprocess.to_model_input` on the
decoded picture. Each figure is the best of a few repeats, on one thread.
"""

import json
import sys
import timeit
from pathlib import Path

import torch
from PIL import Image

from handler.decode import RequestError, decode_image
from handler.preprocess import PreprocessError, to_model_input
from scripts.cli import OneLineParser, positive_float


def best_us(fn, seconds: float = 0.2) -> float:
    """Best-of-5 microseconds per call, each repeat running about ``seconds``."""
    number = max(1, int(seconds / max(timeit.timeit(fn, number=1), 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def bench_file(path: Path, seconds: float = 0.2) -> dict:
    data = path.read_bytes()
    image = decode_image(data)
    row = {"file": path.name, "mode": image.mode, "size": list(image.size), "bytes": len(data)}
    row["decode_us"] = round(best_us(lambda: decode_image(data), seconds), 1)
    try:
        to_model_input(image)
    except PreprocessError as err:
        row["error"] = str(err)
    row["preprocess_us"] = round(best_us(lambda: _preprocess(image), seconds), 1)
    return row


def _preprocess(image: Image.Image) -> None:
    try:
        to_model_input(image)
    except PreprocessError:
        pass


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["file"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    ax.barh(names, [r["decode_us"] for r in rows], label="decode")
    ax.barh(names, [r["preprocess_us"] for r in rows], left=[r["decode_us"] for r in rows], label="preprocess")
    ax.set_xlabel("µs per picture (one thread)")
    ax.invert_yaxis()
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m scripts.bench.preprocess",
        description="Microseconds per picture to decode and preprocess each file (JSON on stdout).",
    )
    parser.add_argument("files", nargs="*", type=Path, help="pictures to time (default: every file in samples/)")
    parser.add_argument("--plot", type=Path, help="also draw a bar chart to this PNG")
    parser.add_argument(
        "--seconds", type=positive_float, default=0.2, help="length of each timing repeat (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    files = args.files or sorted(Path("samples").glob("*.*"))
    if not files:
        print("error: no pictures given and samples/ is empty (run `make samples`)", file=sys.stderr)
        return 1
    torch.set_num_threads(1)  # one thread, as each served worker runs
    rows = []
    for path in files:
        try:
            rows.append(bench_file(path, args.seconds))
        except (OSError, RequestError) as err:
            print(f"error: cannot read {path} as a picture: {err}", file=sys.stderr)
            return 1
    print(json.dumps({"threads": 1, "pictures": rows}, indent=2))
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
