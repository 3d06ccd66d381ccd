"""Micro-benchmark: microseconds per picture to decode and to preprocess, per sample file (JSON).

    python -m scripts.bench.preprocess                      # every file in samples/
    python -m scripts.bench.preprocess a.jpg b.png --plot reports/preprocess_us.png
    python -m scripts.bench.preprocess --baseline /tmp/base # this tree against another checkout, same run

Decoding is timed as the server does it (open, JPEG draft, EXIF transpose,
load); preprocessing is :func:`handler.preprocess.to_model_input` on the
decoded picture. Each figure is the best of a few repeats, in CPU time of one thread, with
the zlib the workers inflate PNGs with.

``--baseline`` times another checkout's ``handler`` and ``model`` packages (for example
``git worktree add /tmp/base main``) against this tree's, in child processes that take
turns ``--rounds`` times: both sides see the same machine, and each figure is the best
over the rounds.
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import torch
from PIL import Image

from handler.decode import RequestError, decode_image
from handler.preprocess import PreprocessError, to_model_input
from scripts.cli import OneLineParser, positive_float, positive_int
from scripts.serving.process import zlib_ng_env

ROOT = Path(__file__).resolve().parents[2]
# The samples that are not MNIST-style: what people send (photo, canvas, scans, paper, ...).
MNIST_STYLE = ("mnist",)


def best_us(fn, seconds: float = 0.2) -> float:
    """Best-of-7 CPU microseconds per call of this thread, each repeat running about ``seconds``.

    CPU time, not wall time: on a shared machine the wall clock also counts the time other
    processes hold the core, while the work is single-threaded either way.
    """
    number = max(1, int(seconds / max(timeit.timeit(fn, number=1, timer=time.thread_time), 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=7, timer=time.thread_time)) / number * 1e6


def bench_file(path: Path, seconds: float = 0.2) -> dict:
    data = path.read_bytes()
    image = decode_image(data)
    with Image.open(io.BytesIO(data)) as original:  # the file's size: a JPEG decodes smaller
        size = list(original.size)
    row = {"file": path.name, "mode": image.mode, "size": size, "decoded": list(image.size), "bytes": len(data)}
    row["decode_us"] = round(best_us(lambda: decode_image(data), seconds), 1)
    try:
        to_model_input(decode_image(data))
    except PreprocessError as err:
        row["error"] = str(err)
    # Each repeat preprocesses a freshly decoded picture, as the server does: a picture's
    # preprocessing may convert or reduce it, which must not be done once for all repeats.
    row["preprocess_us"] = round(best_us(lambda: _both(data), seconds) - row["decode_us"], 1)
    row["total_us"] = round(row["decode_us"] + row["preprocess_us"], 1)
    return row


def _both(data: bytes) -> None:
    try:
        to_model_input(decode_image(data))
    except PreprocessError:
        pass


def real_picture(name: str) -> bool:
    """Whether a sample is a picture people send, not an MNIST digit or the blank one."""
    return not any(tag in name for tag in (*MNIST_STYLE, "blank"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [("before ", "before_")] if "before_decode_us" in rows[0] else []
    sides.append(("", ""))
    labels, decode, preprocess = [], [], []
    for r in rows:
        for label, prefix in sides:
            labels.append(f"{label}{r['file']}")
            decode.append(r[f"{prefix}decode_us"])
            preprocess.append(r[f"{prefix}preprocess_us"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1.2))
    ax.barh(labels, decode, label="decode")
    ax.barh(labels, preprocess, left=decode, label="preprocess")
    ax.set_xlabel("µs per picture (one thread)")
    ax.invert_yaxis()
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def measure(files: list[Path], seconds: float) -> list[dict]:
    torch.set_num_threads(1)  # one thread, as each served worker runs
    return [bench_file(path, seconds) for path in files]


def measure_tree(tree: Path, files: list[Path], seconds: float) -> list[dict]:
    """:func:`measure` in a child process that imports ``handler`` and ``model`` from ``tree``."""
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as code:
        for package in ("handler", "model"):
            os.symlink(Path(tree, package).resolve(), Path(code, package))
        env = {**os.environ, **zlib_ng_env(os.environ), "PYTHONPATH": str(ROOT)}
        # The child's first import path is `code`: its handler and model shadow this tree's.
        script = "import json, sys; from scripts.bench.preprocess import measure; from pathlib import Path; "
        script += "print(json.dumps(measure([Path(f) for f in sys.argv[2:]], float(sys.argv[1]))))"
        command = [sys.executable, "-c", script, str(seconds), *(str(Path(f).resolve()) for f in files)]
        result = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"timing {tree} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


def compare(baseline: Path, files: list[Path], seconds: float, rounds: int, log) -> list[dict]:
    """Per picture, the best over ``rounds`` of the baseline's and this tree's figures, taken in turns."""
    best: dict[str, list[dict]] = {"before": [], "after": []}
    for index in range(rounds):
        for side, tree in (("before", baseline), ("after", ROOT)):
            log(f"round {index + 1}/{rounds}: {side} ({tree}) ...")
            rows = measure_tree(tree, files, seconds)
            best[side] = rows if not best[side] else [_best(a, b) for a, b in zip(best[side], rows, strict=True)]
    merged = []
    for before, after in zip(best["before"], best["after"], strict=True):
        row = {**after}
        for key in ("decode_us", "preprocess_us", "total_us"):
            row[f"before_{key}"] = before[key]
        row["speedup"] = round(before["total_us"] / max(after["total_us"], 1e-3), 2)
        if "error" in before:
            row["before_error"] = before["error"]
        merged.append(row)
    return merged


def _best(a: dict, b: dict) -> dict:
    row = {**a}
    for key in ("decode_us", "preprocess_us"):
        row[key] = min(a[key], b[key])
    row["total_us"] = round(min(a["total_us"], b["total_us"]), 1)
    return row


def markdown(rows: list[dict]) -> str:
    """The table docs/performance.md shows: µs per picture, before and after when there is a baseline."""
    paired = "before_total_us" in rows[0]
    head = "| picture | mode | size | decode | preprocess | total |"
    if paired:
        head = "| picture | mode | size | before: decode | preprocess | total | after: decode | preprocess | total |"
    lines = [head, "| --- | --- | --- |" + " ---: |" * (6 if paired else 3)]
    for r in rows:
        cells = [f"`{r['file']}`", r["mode"], "×".join(map(str, r["size"]))]
        if paired:
            cells += [f"{r[f'before_{k}']:,.0f}" for k in ("decode_us", "preprocess_us", "total_us")]
        cells += [f"{r[k]:,.0f}" for k in ("decode_us", "preprocess_us", "total_us")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m scripts.bench.preprocess",
        description="Microseconds per picture to decode and preprocess each file (JSON on stdout).",
    )
    parser.add_argument("files", nargs="*", type=Path, help="pictures to time (default: every file in samples/)")
    parser.add_argument("--plot", type=Path, help="also draw a bar chart to this PNG")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    parser.add_argument(
        "--seconds", type=positive_float, default=0.2, help="length of each timing repeat (default: %(default)s)"
    )
    parser.add_argument("--baseline", type=Path, help="a checkout to time against this tree, in turns")
    parser.add_argument("--rounds", type=positive_int, default=3, help="turns each side takes (default: %(default)s)")
    args = parser.parse_args(argv)
    files = args.files or sorted(Path("samples").glob("*.*"))
    if not files:
        print("error: no pictures given and samples/ is empty (run `make samples`)", file=sys.stderr)
        return 1
    for path in files:
        try:
            decode_image(path.read_bytes())
        except (OSError, RequestError) as err:
            print(f"error: cannot read {path} as a picture: {err}", file=sys.stderr)
            return 1
    if args.baseline is not None and not (args.baseline / "handler" / "preprocess.py").is_file():
        print(f"error: {args.baseline} has no handler/ package: give a checkout of this repository", file=sys.stderr)
        return 1
    if args.baseline is None:
        rows = measure(files, args.seconds)
    else:
        rows = compare(args.baseline, files, args.seconds, args.rounds, lambda m: print(m, file=sys.stderr))
    real = [r for r in rows if real_picture(r["file"])]
    summary = {"real_pictures_max_total_us": max((r["total_us"] for r in real), default=None)}
    if args.baseline is not None:
        summary["real_pictures_before_max_total_us"] = max((r["before_total_us"] for r in real), default=None)
    print(json.dumps({"threads": 1, "zlib": _zlib(), "pictures": rows, **summary}, indent=2))
    if args.plot:
        plot(rows, args.plot)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows))
    return 0


def _zlib() -> str:
    import zlib

    return zlib.ZLIB_RUNTIME_VERSION


if __name__ == "__main__":
    env = zlib_ng_env(os.environ)
    if env and os.environ.get("LD_LIBRARY_PATH") != env["LD_LIBRARY_PATH"]:
        # Inflate PNGs with the workers' zlib: the dynamic linker reads LD_LIBRARY_PATH only at start.
        command = [sys.executable, "-m", "scripts.bench.preprocess", *sys.argv[1:]]
        os.execve(sys.executable, command, {**os.environ, **env})
    sys.exit(main())
