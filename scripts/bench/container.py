"""The image's start-up, first requests and memory, measured live with podman.

    python -m scripts.bench.container --variants shipped "c1:MNIST_SERVE_VMARGS=-XX:TieredStopAtLevel=1"

Each variant runs a fresh container of ``--image`` with the production flags (read-only root,
no capabilities, ``--cpus 2 --memory 1536m``) and its environment (``NAME:KEY=VALUE,KEY=VALUE``), then:
start -> ready (the entrypoint's ready marker, after its warm-up); wrk's first ``--requests`` answers
(what the first users of a new pod see); a warm-up until the JVM's JIT compilers are quiet and the same
load again (the warm reference); the container's memory at rest and its peak under that load.
"""

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from scripts.bench.serve.load import wrk
from scripts.bench.serve.report import machine
from scripts.bench.serve.sweep import warm_up as warm_until_quiet
from scripts.cli import OneLineParser, fail, positive_int, write_report
from scripts.serving.client import Client
from scripts.serving.errors import ServeError
from scripts.serving.warmup import sample_bodies

FLAGS = ("--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL", "--security-opt", "no-new-privileges")
LIMITS = ("--cpus", "2", "--memory", "1536m")
KEEP = ("requests", "rps", "p50_ms", "p99_ms", "max_ms", "non_200")


class Running(Client):
    """A started container as a client of its APIs; ``pid`` is its JVM's, as the host sees it."""

    def __init__(self, name: str, port: int, run_dir: Path):
        base = "http://127.0.0.1"
        super().__init__(f"{base}:{port}", "", f"{base}:{port + 1}", "mnist", run_dir / "key_file.json")
        self.name = name
        self.pid = None

    def memory_mib(self) -> float:
        """The container's memory use (its cgroup's), in MiB."""
        out = subprocess.run(["podman", "stats", "--no-stream", "--format", "json", self.name], capture_output=True)
        return round(_bytes(json.loads(out.stdout)[0]["mem_usage"].split("/")[0]) / 2**20, 1)


def _bytes(text: str) -> float:
    """``512.3MB``, ``1.2GiB``, ... as podman stats writes them, in bytes."""
    units = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    number, unit = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", text).groups()
    return float(number) * units[unit]


def java_pid(name: str) -> int | None:
    import psutil

    top = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", name], capture_output=True, text=True)
    for child in psutil.Process(int(top.stdout)).children(recursive=True):
        if child.name() == "java":
            return child.pid
    return None


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, assignments = text.partition(":")
    env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
    return name, env


def peak_memory(box: Running, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        try:
            out.append(box.memory_mib())
        except (ValueError, KeyError, IndexError):
            pass
        stop.wait(1.0)


def measure(image: str, name: str, env: dict, port: int, count: int, concurrency: int) -> dict:
    bodies = sample_bodies()
    with tempfile.TemporaryDirectory(prefix="bench-container-") as work:
        run_dir = Path(work)
        run_dir.chmod(0o777)
        container = f"bench-{name}"
        subprocess.run(["podman", "rm", "-f", "--ignore", container], capture_output=True)
        command = ["podman", "run", "-d", "--name", container, *FLAGS, *LIMITS]
        command += ["-p", f"127.0.0.1:{port}:8080", "-p", f"127.0.0.1:{port + 1}:8082"]
        command += ["-v", f"{run_dir}:/srv/mnist-serve/run:Z", *(f"-e{k}={v}" for k, v in env.items()), image]
        begin = time.monotonic()
        subprocess.run(command, check=True, capture_output=True)
        box = Running(container, port, run_dir)
        try:
            while not (run_dir / "ready").exists():
                if time.monotonic() - begin > 300:
                    raise ServeError(f"{container} was not ready after 300 s")
                time.sleep(0.1)
            ready = round(time.monotonic() - begin, 1)
            logs = subprocess.run(["podman", "logs", container], capture_output=True, text=True)
            warmup = next((ln for ln in logs.stdout.splitlines() if "warmed up" in ln), "")
            box.pid = java_pid(container)
            rest = box.memory_mib()
            first = wrk(box, bodies, concurrency, count)
            rounds = warm_until_quiet(box, bodies, 5000, 15)
            samples, stop = [], threading.Event()
            sampler = threading.Thread(target=peak_memory, args=(box, stop, samples))
            sampler.start()
            warm = wrk(box, bodies, concurrency, count)
            stop.set()
            sampler.join()
        finally:
            subprocess.run(["podman", "rm", "-f", "--time", "30", container], capture_output=True)
    return {
        "variant": name,
        "env": env,
        "start_to_ready_s": ready,
        "warmup": warmup.strip(),
        "first": {k: first[k] for k in KEEP},
        "warm": {**{k: warm[k] for k in KEEP}, "warmup_rounds": rounds},
        "p99_over_warm": round(first["p99_ms"] / warm["p99_ms"], 2),
        "memory_mib": {"at_rest": rest, "under_load_peak": max(samples, default=None)},
    }


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m scripts.bench.container", description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="localhost/mnist-serve:0.1.0")
    parser.add_argument("--variants", nargs="+", default=["shipped"], help="NAME[:KEY=VALUE,...] (shipped)")
    parser.add_argument("--requests", type=positive_int, default=10_000, help="answers measured (10000)")
    parser.add_argument("--concurrency", type=positive_int, default=32, help="connections (32)")
    parser.add_argument("--repeats", type=positive_int, default=1, help="runs of each variant (1)")
    parser.add_argument("--port", type=int, default=18200, help="inference port; metrics on the next (18200)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_container.json"))
    args = parser.parse_args(argv)
    report = {"machine": machine(), "image": args.image, "requests": args.requests, "runs": []}
    try:
        for _ in range(args.repeats):
            for text in args.variants:
                name, env = parse_variant(text)
                run = measure(args.image, name, env, args.port, args.requests, args.concurrency)
                report["runs"].append(run)
                print(json.dumps(run), flush=True)
    except (ServeError, subprocess.CalledProcessError) as error:
        return fail(str(error))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
