"""Time a newcomer's first answer: a fresh clone, ``make serve``, until a sample picture gets a 200.

    python -m scripts.bench.first_answer                    # this checkout's HEAD
    python -m scripts.bench.first_answer --rev <commit>     # another revision, for a before and after

The clone shares this checkout's ``.venv`` (as after ``make install``) and uses ``MNIST_DIR``; it
has no checkpoint, calibration, archive or picture cache, so ``make serve`` trains, calibrates,
archives and starts TorchServe. A sample picture is sent every half second from the moment the
archive exists. Stages, from the files each one writes: training and its evaluation figures
(``reports/metrics.json``), the calibration (``mnist_cnn.calibration.pt``), the archive
(``model_store/mnist.mar``), then TorchServe's start until the first 200 answer; ``make serve``
returns after its warm-up, which is reported apart. Writes JSON and a plot; prints the JSON.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from scripts.cli import OneLineParser, fail, write_report
from scripts.serving.config import free_ports

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "samples/7_mnist.png"
STAGES = (
    ("training and figures", "reports/metrics.json"),
    ("calibration", "mnist_cnn.calibration.pt"),
    ("archive", "model_store/mnist.mar"),
)


def clone(rev: str, into: Path) -> None:
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "-q", rev], check=True)
    (into / ".venv").symlink_to(ROOT / ".venv")
    (ROOT / ".venv" / ".installed").touch()  # newer than the clone's requirements: make installs nothing


def first_answer(tree: Path, ports: dict, started: float, server: subprocess.Popen) -> float:
    """Seconds from ``started`` to the first 200 answer to the sample picture."""
    url = f"http://127.0.0.1:{ports['INFERENCE_PORT']}/predictions/mnist"
    body = (tree / SAMPLE).read_bytes()
    deadline = started + 3600
    while (server.poll() is None or (tree / STAGES[-1][1]).exists()) and time.perf_counter() < deadline:
        keys = tree / "key_file.json"
        if keys.is_file():
            try:
                key = json.loads(keys.read_text())["inference"]["key"]
                headers = {"Authorization": f"Bearer {key}", "Content-Type": "image/png"}
                if requests.post(url, data=body, headers=headers, timeout=5).status_code == 200:
                    return time.perf_counter() - started
            except (requests.RequestException, ValueError, KeyError):
                pass
        time.sleep(0.5)
    raise RuntimeError("make serve ended without an answer")


def measure(rev: str, mnist_dir: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="first-answer-") as scratch:
        tree = Path(scratch) / "mnist-serve"
        clone(rev, tree)
        names = ("INFERENCE_PORT", "MANAGEMENT_PORT", "METRICS_PORT", "GRPC_INFERENCE_PORT", "GRPC_MANAGEMENT_PORT")
        ports = {name: str(port) for name, port in free_ports(names).items()}
        env = {**os.environ, **ports, "MNIST_DIR": mnist_dir}
        started, wall = time.perf_counter(), time.time()
        log = open(Path(scratch) / "make-serve.log", "w")
        server = subprocess.Popen(["make", "serve"], cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            answered = first_answer(tree, ports, started, server)
            server.wait()
            returned = time.perf_counter() - started
        finally:
            subprocess.run(["make", "-s", "stop"], cwd=tree, env=env, capture_output=True)
            log.close()
        if server.returncode:
            raise RuntimeError(f"make serve failed: {(Path(scratch) / 'make-serve.log').read_text()[-400:]}")
        ends = [(name, (tree / path).stat().st_mtime - wall) for name, path in STAGES]
    stages, previous = {}, 0.0
    for name, end in [*ends, ("TorchServe start to the first answer", answered)]:
        stages[name] = round(end - previous, 1)
        previous = end
    return {
        "rev": rev,
        "first_answer_s": round(answered, 1),
        "make_serve_returned_s": round(returned, 1),
        "stages_s": stages,
        "stages_share": {name: round(s / answered, 3) for name, s in stages.items()},
    }


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.5 * len(runs)))
    for row, run in enumerate(runs):
        left = 0.0
        for name, seconds in run["stages_s"].items():
            ax.barh(run["rev"][:12], seconds, left=left, label=name if row == 0 else None)
            left += seconds
    ax.set_xlabel("seconds from `make serve` on a fresh clone to the first answer")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m scripts.bench.first_answer", description=__doc__.splitlines()[0])
    parser.add_argument("--rev", action="append", help="revision to clone (repeatable; default: HEAD)")
    parser.add_argument("--output", default="reports/first_answer.json", help="default: %(default)s")
    args = parser.parse_args(argv)
    mnist_dir = os.environ.get("MNIST_DIR")
    if not mnist_dir:
        return fail("set MNIST_DIR to a folder of the MNIST IDX files: the clone trains from it")
    if shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "python").exists():
        return fail("needs make and this checkout's .venv (make install)")
    for rev in args.rev or []:
        known = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], capture_output=True
        )
        if known.returncode:
            return fail(f"--rev {rev}: not a commit of this repository")
    print("timing make serve on a fresh clone: it trains, calibrates and starts TorchServe (several minutes)")
    runs = []
    for rev in args.rev or ["HEAD"]:
        runs.append(measure(rev, mnist_dir))
        print(json.dumps(runs[-1]), file=sys.stderr)
    output = Path(args.output)
    write_report({"runs": runs}, output)
    plot(runs, output.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
