"""The figures through TorchServe: sequential latency by route, and predictions at concurrency 32 before and
after the workers have served explanations, beside a baseline checkout's archive when given."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from scripts.bench.explain.inprocess import timed
from scripts.bench.serve.sweep import measure, settings, warm_up
from scripts.serving.archive import build_archive
from scripts.serving.errors import ServeError
from scripts.serving.process import Server, serve_store


def sequential(server: Server, route: str, bodies: list[bytes], count: int) -> dict:
    """Latency of ``count`` requests sent one after another (keep-alive), by route."""
    session = requests.Session()
    headers = {**server.auth("inference"), "Content-Type": "image/png"}
    url = f"{server.inference}/{route}/{server.model}"
    index = iter(range(10**9))

    def one():
        response = session.post(url, data=bodies[next(index) % len(bodies)], headers=headers, timeout=60)
        if response.status_code != 200:
            raise ServeError(f"{route} answered HTTP {response.status_code}: {response.text[:200]}")

    return timed(one, count)


def first_explanations_ms(server: Server, body: bytes, workers: int) -> list[float]:
    """The first explanation of each worker (captum's import included), sent at once so each gets one."""
    from concurrent.futures import ThreadPoolExecutor

    headers = {**server.auth("inference"), "Content-Type": "image/png"}

    def one(_):
        begin = time.perf_counter()
        requests.post(f"{server.inference}/explanations/{server.model}", data=body, headers=headers, timeout=120)
        return round((time.perf_counter() - begin) * 1000, 1)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(workers)))


def baseline_archive(root: Path, checkpoint: Path, store: Path) -> Path:
    """The archive that checkout builds (its own handler and model code)."""
    command = [sys.executable, "-m", "scripts.serving", "archive", "--checkpoint", str(checkpoint.resolve())]
    command += ["--model-store", str(store)]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if result.returncode != 0:
        raise ServeError(f"building the baseline archive in {root} failed: {result.stderr.strip()[-300:]}")
    return store / "mnist.mar"


def through_the_server(args, bodies: list[Path], log) -> dict:
    body_bytes = [p.read_bytes() for p in bodies]
    figures, points = {}, []
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as work:
        stores = {"explanations": Path(work, "store")}
        build_archive(args.checkpoint, stores["explanations"])
        if args.baseline_root:
            stores["baseline"] = Path(work, "baseline-store")
            baseline_archive(args.baseline_root, args.checkpoint, stores["baseline"])
        servers = {}
        try:
            for name, store in stores.items():
                workdir = Path(work, name)
                workdir.mkdir()
                log(f"{name}: starting TorchServe ...")
                servers[name] = serve_store(store, workdir)
                warm_up(servers[name], bodies, args.warmup, 3)

            def predictions_c32(label: str) -> None:
                for name, server in servers.items():
                    point = measure(server, settings("default", server), bodies, 32, args.requests).to_json()
                    points.append({"server": name, "phase": label, **point})
                    log(f"  {name:<12} {label:<22} c=32 {point['rps']:8.1f} req/s  p99 {point['p99_ms']:.1f} ms")

            for _ in range(args.rounds):
                predictions_c32("predictions only")
            ours = servers["explanations"]
            figures["first_explanation_per_worker_ms"] = first_explanations_ms(
                ours, body_bytes[0], len(ours.describe()["workers"])
            )
            figures["explanation"] = sequential(ours, "explanations", body_bytes, args.explanations)
            figures["prediction"] = sequential(ours, "predictions", body_bytes, args.explanations)
            log(f"  sequential: explanation {figures['explanation']}, prediction {figures['prediction']}")
            for _ in range(args.rounds):
                predictions_c32("after explanations")
        finally:
            for server in servers.values():
                server.stop()
    figures["predictions_c32"] = points
    figures["rps_by_server_and_phase"] = {
        f"{name} / {phase}": [p["rps"] for p in points if p["server"] == name and p["phase"] == phase]
        for name in stores
        for phase in ("predictions only", "after explanations")
    }
    return figures
