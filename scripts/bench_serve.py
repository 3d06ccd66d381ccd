"""Serving benchmark: TorchServe's images/s and latency against the model's own in-process ceiling.

    python -m scripts.bench_serve                         # the default sweep -> reports/bench_serve.{json,png,md}
    python -m scripts.bench_serve --configs default w2-b1-d0 --concurrency 1 32
    python -m scripts.bench_serve --quick --attach logs   # a few hundred requests against `make serve`'s server

Each configuration (``w<workers>-b<batch size>-d<max batch delay ms>``, or ``default`` for
config.properties as shipped) runs the bundle's real archive and config.properties on free
loopback ports with a private model store, started and stopped by scripts.serving. wrk
(scripts/bench_serve.lua) sends a fixed number of real single-digit PNG uploads from samples/
(blank.png excluded) with the inference key, after a warm-up, at each concurrency.

The ceiling is the handler's own work in-process, without HTTP: decode the same PNG bodies,
preprocess, one batched forward pass, JSON answers (MnistHandler.preprocess / inference /
postprocess), in one process per core with one torch thread each, all running at once:
the most images/s the machine's cores can turn out through this handler and model.
"""

import argparse
import json
import multiprocessing
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import psutil
import requests

from scripts.serving import ROOT, ServeError, Server, build_archive, free_ports, render_config, start, zlib_ng_env

LUA = ROOT / "scripts" / "bench_serve.lua"
SAMPLES = ROOT / "samples"
CONCURRENCY = (1, 8, 32, 64)
CEILING_BATCHES = (1, 8, 32)
# "default" is config.properties as shipped; the others: batching off, one and two workers;
# batching on with a short and a longer delay, and bigger batches.
CONFIGS = ("default", "w1-b1-d0", "w2-b1-d0", "w1-b8-d1", "w2-b8-d5", "w2-b16-d2")
CONFIG_PATTERN = re.compile(r"^w(\d+)-b(\d+)-d(\d+)$")
# Warm-up rounds repeat until the JVM's JIT compiler threads use less than this share of a core:
# on 2 cores they were still compiling (a third of a core) after 5,000 requests, and took
# 20,000-50,000 to settle.
JIT_QUIET = 0.02
# ... in this many rounds in a row: compilation comes in waves, and one quiet round was often a lull.
QUIET_ROUNDS = 2
WARMUP_ROUNDS = 15
# Every point in the JSON report has these (documented in the README).
FIELDS = (
    "config",
    "workers",
    "batch_size",
    "max_batch_delay_ms",
    "concurrency",
    "requests",
    "duration_s",
    "rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "non_200",
    "ceiling_images_per_s",
    "fraction_of_ceiling",
    "cpu_ms_per_request",
    "cpu_efficiency",
    "jit_cpu_ms",
)


# ---- request bodies and the in-process ceiling ------------------------------------------


def sample_bodies(folder: Path = SAMPLES) -> list[Path]:
    """The sample PNGs a user might send, without the deliberately blank one."""
    paths = [p for p in sorted(Path(folder).glob("*.png")) if not p.stem.startswith("blank")]
    if not paths:
        raise ServeError(f"no sample PNGs in {folder}")
    return paths


def _handler(checkpoint: Path):
    """MnistHandler with the checkpoint's model on the CPU, as a worker has it (minus TorchServe)."""
    import torch

    from handler.mnist_handler import MnistHandler
    from model import MnistCNN
    from model.inference import for_inference

    model = MnistCNN()
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    handler = MnistHandler()
    handler.model, handler.device, handler.initialized = for_inference(model), torch.device("cpu"), True
    return handler


def _handle(handler, rows: list[dict]) -> list[str]:
    return handler.postprocess(handler.inference(handler.preprocess(rows)))


def _ceiling_worker(checkpoint, bodies, batch_size, seconds, barrier, results):
    """One core's share: images/s through the handler, one torch thread."""
    import torch

    torch.set_num_threads(1)
    handler = _handler(checkpoint)
    rows = [{"body": body} for body in bodies]
    batches = [[rows[(i + j) % len(rows)] for j in range(batch_size)] for i in range(len(rows))]
    for batch in batches:  # warm-up: allocator, caches
        _handle(handler, batch)
    barrier.wait()
    images, begin, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - begin < seconds:
        for batch in batches:
            _handle(handler, batch)
        images += batch_size * len(batches)
    results.put((images / (time.perf_counter() - begin), (time.process_time() - cpu) / images * 1000))


def ceiling(checkpoint: Path, bodies: list[bytes], batch_size: int, processes: int, seconds: float) -> tuple:
    """Images/s of ``processes`` single-threaded handler processes working at once, and CPU ms per image."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_ceiling_worker, args=(checkpoint, bodies, batch_size, seconds, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=seconds * 10 + 120) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(rate for rate, _ in answers), statistics.mean(cpu for _, cpu in answers)


def single_image_ms(checkpoint: Path, bodies: list[bytes], repeats: int = 30) -> dict:
    """Per-image milliseconds, one torch thread, batch of one: the whole handler and each stage.

    The median over the sample mix of each image's best of ``repeats``; the server's c=1
    latency is this plus HTTP, the frontend, the batch delay and the worker round trip.
    """
    import torch

    from handler.decode import request_image
    from handler.preprocess import to_model_input

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    handler = _handler(checkpoint)
    stages = {"handler": [], "decode": [], "preprocess": [], "forward": [], "postprocess": []}

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
        return min(times) * 1000

    try:
        for body in bodies:
            row = [{"body": body}]
            image = request_image(row[0])
            x = torch.stack([to_model_input(image)])
            probabilities = handler.inference(x)
            stages["handler"].append(best(lambda row=row: _handle(handler, row)))
            stages["decode"].append(best(lambda body=body: request_image({"body": body})))
            stages["preprocess"].append(best(lambda image=image: to_model_input(image)))
            stages["forward"].append(best(lambda x=x: handler.inference(x)))
            stages["postprocess"].append(best(lambda p=probabilities: handler.postprocess(p)))
    finally:
        torch.set_num_threads(threads)
    return {name: round(statistics.median(values), 3) for name, values in stages.items()}


# ---- one TorchServe per configuration ---------------------------------------------------


def parse_config(name: str, defaults: dict) -> dict:
    """``w2-b8-d1`` -> {"workers": 2, "batch_size": 8, "max_batch_delay_ms": 1}; ``default`` -> config.properties."""
    if name == "default":
        return {"name": name, **defaults}
    match = CONFIG_PATTERN.match(name)
    if not match:
        raise ServeError(f"bad configuration {name!r}: use 'default' or w<workers>-b<batch size>-d<delay ms>")
    workers, batch, delay = (int(g) for g in match.groups())
    if workers < 1 or batch < 1:
        raise ServeError(f"bad configuration {name!r}: workers and batch size start at 1")
    return {"name": name, "workers": workers, "batch_size": batch, "max_batch_delay_ms": delay}


def shipped_config(path: Path = ROOT / "config.properties") -> dict:
    """Workers, batch size and delay as config.properties sets them."""
    text = Path(path).read_text()

    def number(key: str) -> int:
        match = re.search(rf'"{key}":\s*(\d+)', text)
        if not match:
            raise ServeError(f"{path} has no {key} in its models block")
        return int(match.group(1))

    return {
        "workers": number("minWorkers"),
        "batch_size": number("batchSize"),
        "max_batch_delay_ms": number("maxBatchDelay"),
    }


def start_server(config: dict, store: Path, workdir: Path, extra: dict) -> Server:
    """config.properties with this configuration's workers and batching, on free loopback ports."""
    inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
    overrides = {
        "inference_address": f"http://127.0.0.1:{inference}",
        "management_address": f"http://127.0.0.1:{management}",
        "metrics_address": f"http://127.0.0.1:{metrics}",
        "grpc_inference_port": str(grpc_inference),
        "grpc_management_port": str(grpc_management),
        "model_store": str(store),
        "metrics_config": str(ROOT / "handler" / "metrics.yaml"),
        "default_workers_per_model": str(config["workers"]),
        **extra,
    }
    path = render_config(ROOT / "config.properties", workdir / "config.properties", overrides)
    text = path.read_text()
    for key, value in (
        ("minWorkers", config["workers"]),
        ("maxWorkers", config["workers"]),
        ("batchSize", config["batch_size"]),
        ("maxBatchDelay", config["max_batch_delay_ms"]),
    ):
        text = re.sub(rf'"{key}":\s*\d+', f'"{key}": {value}', text)
    path.write_text(text)
    return start(path, workdir / "logs", cwd=workdir)


# ---- load ---------------------------------------------------------------------------------


def wrk(server: Server, bodies: list[Path], concurrency: int, count: int, threads: int = 1) -> dict:
    """``count`` answers at ``concurrency`` connections; wrk's JSON (latencies in ms)."""
    if shutil.which("wrk") is None:
        raise ServeError("wrk is not installed: apt-get install wrk (.ci/run installs it)")
    threads = max(1, min(threads, concurrency))
    url = f"{server.inference}/predictions/{server.model}"
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", "-d600s", "--timeout", "30s", "-s", str(LUA), url]
    command += ["--", str(max(1, count // threads)), server.key("inference"), *map(str, bodies)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=660)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise ServeError(f"wrk gave no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line.removeprefix("BENCH_JSON "))


def jit_cpu_seconds(pid: int) -> float | None:
    """CPU seconds so far of the JVM's JIT compiler threads (from /proc: Linux), else None."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return None
    total = 0.0
    for task in tasks.iterdir():
        try:
            if (task / "comm").read_text().startswith(("C1 Compiler", "C2 Compiler")):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            pass  # the thread ended
    return total


def warm_up(server: Server, bodies: list[Path], requests: int, max_rounds: int) -> int:
    """Rounds of ``requests`` answers at concurrency 32 until the JIT compilers are quiet; the rounds sent.

    Each round also reads the metrics API, as every measured point does: the first reads set off
    a wave of recompilation in the JVM (0.5-0.7 s of compiler CPU during the next point, and a
    p99 at concurrency 32 several ms higher).
    """
    rounds = quiet = 0
    while rounds < max_rounds and quiet < QUIET_ROUNDS:
        before, start = jit_cpu_seconds(server.pid), time.monotonic()
        scrape_metrics(server)
        wrk(server, bodies, 32, requests)
        scrape_metrics(server)
        rounds += 1
        after = jit_cpu_seconds(server.pid)
        if before is None or after is None:
            break
        quiet = quiet + 1 if (after - before) / (time.monotonic() - start) < JIT_QUIET else 0
    return rounds


def scrape_metrics(server: Server) -> dict:
    """TorchServe's cumulative request counters and microsecond latencies, and our batch counters."""
    text = requests.get(f"{server.metrics}/metrics", timeout=10).text
    totals = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+)\{[^}]*\}\s+([0-9.eE+-]+)$", line)
        if match and match.group(1) in (
            "ts_inference_requests_total",
            "ts_inference_latency_microseconds",
            "ts_queue_latency_microseconds",
            "InferenceBatches",
            "InferenceImages",
        ):
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(2))
    return totals


def server_profile(before: dict, after: dict) -> dict:
    """Per-request means from the metrics' growth: time inside TorchServe, in its queue, batch size."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    n = delta.get("ts_inference_requests_total", 0.0)
    if not n:
        return {}
    batches = delta.get("InferenceBatches", 0.0)
    return {
        "server_ms": round(delta.get("ts_inference_latency_microseconds", 0.0) / n / 1000, 3),
        "queue_ms": round(delta.get("ts_queue_latency_microseconds", 0.0) / n / 1000, 3),
        "mean_batch": round(delta.get("InferenceImages", 0.0) / batches, 2) if batches else None,
    }


def cpu_seconds(server: Server) -> tuple[float, float, float]:
    """CPU seconds so far of TorchServe's Java frontend, of its workers, and of our finished children (wrk)."""
    frontend = psutil.Process(server.pid)
    times = frontend.cpu_times()
    workers = 0.0
    for child in frontend.children(recursive=True):
        try:
            child_times = child.cpu_times()
            workers += child_times.user + child_times.system
        except psutil.Error:
            pass
    ours = resource.getrusage(resource.RUSAGE_CHILDREN)
    return times.user + times.system, workers, ours.ru_utime + ours.ru_stime


def measure(server: Server, config: dict, bodies: list[Path], concurrency: int, count: int) -> dict:
    """One point: wrk's figures, TorchServe's per-request means, CPU ms per request by process."""
    metrics, cpu, jit = scrape_metrics(server), cpu_seconds(server), jit_cpu_seconds(server.pid)
    result = wrk(server, bodies, concurrency, count)
    cpu = [after - before for before, after in zip(cpu, cpu_seconds(server), strict=True)]
    jit_after = jit_cpu_seconds(server.pid)
    # Compilation bursts during a point are what its p99 is most sensitive to.
    result["jit_cpu_ms"] = round((jit_after - jit) * 1000) if jit is not None and jit_after is not None else None
    result.update(server_profile(metrics, scrape_metrics(server)))
    n = max(result["requests"], 1)
    result["cpu_ms_per_request"] = {
        name: round(seconds / n * 1000, 3) for name, seconds in zip(("frontend", "workers", "wrk"), cpu, strict=True)
    }
    keys = ("workers", "batch_size", "max_batch_delay_ms")
    return {"config": config["name"], **{k: config[k] for k in keys}, "concurrency": concurrency, **result}


def log_point(point: dict, log) -> None:
    cpu = point["cpu_ms_per_request"]
    log(
        f"  c={point['concurrency']:<3} {point['rps']:8.1f} req/s  p50 {point['p50_ms']:6.2f}  "
        f"p90 {point['p90_ms']:6.2f}  p99 {point['p99_ms']:6.2f} ms  non-200 {point['non_200']}  "
        f"batch {point.get('mean_batch')}  cpu ms/req: java {cpu['frontend']:.2f} workers {cpu['workers']:.2f}  "
        f"JIT {point.get('jit_cpu_ms')} ms"
    )


def run_config(config, store, workdir, bodies, concurrencies, counts, warmup, extra, log) -> list[dict]:
    """Start one server, warm it up (``warmup``: answers per round, most rounds), run wrk per concurrency, stop it."""
    log(
        f"{config['name']}: {config['workers']} worker(s), batch {config['batch_size']}, "
        f"delay {config['max_batch_delay_ms']} ms: starting TorchServe ..."
    )
    server = start_server(config, store, workdir, extra)
    points = []
    try:
        rounds = warm_up(server, bodies, *warmup) if warmup[0] else 0
        log(f"  warmed up: {rounds} round(s) of {warmup[0]} answers")
        for concurrency in concurrencies:
            point = measure(server, config, bodies, concurrency, counts(concurrency))
            points.append({**point, "warmup_rounds": rounds})
            log_point(points[-1], log)
    finally:
        server.stop()
    return points


def request_profile(point: dict, single: dict) -> dict:
    """Where one request's time goes at concurrency 1, in ms.

    Means add up: the client's mean latency, TorchServe's mean time per request and, inside it,
    the mean wait in its queue (which holds the batch delay); the handler is the in-process
    single-image median (its stages too). What is left between them is HTTP + the Java frontend,
    and the frontend-to-worker round trip (socket, TorchServe's Python service around the handler).
    """
    handler = single["handler"]
    server, queue = point.get("server_ms", 0.0), point.get("queue_ms", 0.0)
    return {
        "config": point["config"],
        "client_p50_ms": point["p50_ms"],
        "client_mean_ms": point["mean_ms"],
        "http_and_frontend_ms": round(point["mean_ms"] - server, 3),
        "queue_and_batch_delay_ms": queue,
        "worker_round_trip_ms": round(server - queue - handler, 3),
        "handler_ms": handler,
        "handler_stages_ms": {k: single[k] for k in ("decode", "preprocess", "forward", "postprocess")},
        "cpu_ms_per_request": point["cpu_ms_per_request"],
    }


# ---- report -------------------------------------------------------------------------------


def machine() -> dict:
    import torch

    model = platform.processor() or ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(report: dict) -> str:
    """The README table: one row per configuration and concurrency, then the c=1 profile."""
    c, m = report["ceiling"], report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average_at_start'][0]} at the start; "
        f"torch {m['torch']}.",
        f"Ceiling (the handler in-process, {c['processes']} processes x 1 torch thread): "
        + ", ".join(f"batch {b}: {v:,.0f} img/s" for b, v in c["images_per_s"].items())
        + f"; one image alone: {report['single_image_ms']['handler']:.2f} ms (median over the samples).",
        "",
        "| config | workers | batch | delay ms | concurrency | req/s | of ceiling | CPU eff. | p50 ms | p90 ms "
        "| p99 ms | non-200 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in report["points"]:
        lines.append(
            f"| {p['config']} | {p['workers']} | {p['batch_size']} | {p['max_batch_delay_ms']} | {p['concurrency']} "
            f"| {p['rps']:,.0f} | {p['fraction_of_ceiling']:.0%} | {p['cpu_efficiency']:.0%} | {p['p50_ms']:.1f} "
            f"| {p['p90_ms']:.1f} | {p['p99_ms']:.1f} | {p['non_200']} |"
        )
    profile = report.get("profile_c1")
    if profile:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in profile["handler_stages_ms"].items())
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in profile["cpu_ms_per_request"].items())
        lines += [
            "",
            f"One request at concurrency 1 ({profile['config']}), mean ms: client {profile['client_mean_ms']:.2f} = "
            f"HTTP + frontend {profile['http_and_frontend_ms']:.2f} + queue and batch delay "
            f"{profile['queue_and_batch_delay_ms']:.2f} + frontend-worker round trip "
            f"{profile['worker_round_trip_ms']:.2f} + handler {profile['handler_ms']:.2f} ({stages}); "
            f"CPU per request: {cpu}.",
        ]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(12, 4.5))
    configs = dict.fromkeys(p["config"] for p in report["points"])
    for name in configs:
        points = [p for p in report["points"] if p["config"] == name]
        xs = [p["concurrency"] for p in points]
        ax_rps.plot(xs, [p["rps"] for p in points], marker="o", label=name)
        ax_p99.plot(xs, [p["p99_ms"] for p in points], marker="o", label=name)
    ceilings = report["ceiling"]["images_per_s"]
    for value in ceilings.values():
        ax_rps.axhline(value, linestyle="--", linewidth=0.8, color="grey")
    label = "ceiling, batch " + ", ".join(f"{b}: {v:,.0f}" for b, v in ceilings.items())
    ax_rps.annotate(label, (0.01, max(ceilings.values())), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
    ticks = sorted({p["concurrency"] for p in report["points"]})
    for ax, label in ((ax_rps, "requests/s"), (ax_p99, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_rps.set_title("Throughput (dashed: in-process ceiling)")
    ax_p99.set_title("p99 latency")
    ax_p99.set_yscale("log")
    ax_p99.legend(fontsize=8, title="w<workers>-b<batch>-d<delay ms>", title_fontsize=8)
    fig.suptitle(f"TorchServe mnist on {report['machine']['cpu']} ({report['machine']['cores']} cores)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- command line -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="weights (default mnist_cnn.pth)"
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help=f"default: {' '.join(CONFIGS)}")
    parser.add_argument("--concurrency", nargs="+", type=int, default=list(CONCURRENCY), help="default: 1 8 32 64")
    # A p99 is the 100th-worst of 10,000 answers: steadier than the 40th of 4,000.
    parser.add_argument("--requests", type=int, default=10000, help="answers per point (default 10000)")
    parser.add_argument("--requests-c1", type=int, default=3000, help="answers per point at concurrency 1 (3000)")
    parser.add_argument(
        "--warmup", type=int, default=5000, help="answers per warm-up round after each start, at concurrency 32 (5000)"
    )
    parser.add_argument(
        "--warmup-rounds",
        type=int,
        default=WARMUP_ROUNDS,
        help=f"most warm-up rounds: they stop once the JVM's JIT compilers are quiet ({WARMUP_ROUNDS})",
    )
    parser.add_argument("--ceiling-seconds", type=float, default=3.0, help="seconds per ceiling measurement (3)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra config.properties overrides")
    parser.add_argument("--quick", action="store_true", help="a few hundred requests, one configuration")
    parser.add_argument("--attach", type=Path, metavar="RUN_DIR", help="use the server running from RUN_DIR (logs)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_serve.json"), help="JSON report")
    parser.add_argument("--plot", type=Path, default=Path("reports/bench_serve.png"), help="plot")
    parser.add_argument("--markdown", type=Path, default=Path("reports/bench_serve.md"), help="README table")
    return parser


def run(args, log=print) -> dict:
    bodies = sample_bodies()
    body_bytes = [p.read_bytes() for p in bodies]
    defaults = shipped_config()
    if any("=" not in item for item in args.set):
        raise ServeError(f"--set takes key=value pairs, got {args.set}")
    if min(args.concurrency) < 1 or args.requests < 1 or args.requests_c1 < 1:
        raise ServeError("concurrency and request counts start at 1")
    if args.warmup < 0 or args.warmup_rounds < 1:
        raise ServeError("--warmup is 0 (none) or more answers, --warmup-rounds 1 or more")
    extra = dict(item.split("=", 1) for item in args.set)
    if args.quick:  # one configuration, one concurrency, a few hundred requests
        args.configs = ["default"] if args.configs == list(CONFIGS) else args.configs[:1]
        args.concurrency = [8] if args.concurrency == list(CONCURRENCY) else args.concurrency[:1]
        args.requests = args.requests_c1 = 300
        args.warmup, args.warmup_rounds, args.ceiling_seconds = 100, 1, 0.5

    def counts(c: int) -> int:
        return args.requests_c1 if c == 1 else args.requests

    points, attached = [], None
    if args.attach:
        attached = Server.load(args.attach)
        if attached is None:
            raise ServeError(f"no running TorchServe in {args.attach}: `make serve` first, or drop --attach")
        description = attached.describe()
        config = {
            "name": "attached",
            "workers": len(description.get("workers", [])),
            "batch_size": description.get("batchSize", 1),
            "max_batch_delay_ms": description.get("maxBatchDelay", 0),
        }
        configs = [config]
    else:
        configs = [parse_config(name, defaults) for name in args.configs]
    if not args.checkpoint.is_file():
        raise ServeError(f"no checkpoint at {args.checkpoint}: run `make train` first")

    report = {"machine": machine(), "samples": [p.name for p in bodies], "defaults": defaults}
    cores = os.cpu_count() or 1
    batches = sorted(set(CEILING_BATCHES) | {c["batch_size"] for c in configs})
    log(f"ceiling: handler in-process, {cores} process(es) x 1 torch thread, batch sizes {batches} ...")
    report["single_image_ms"] = single_image_ms(args.checkpoint, body_bytes, repeats=5 if args.quick else 30)
    measured = {b: ceiling(args.checkpoint, body_bytes, b, cores, args.ceiling_seconds) for b in batches}
    rates = {b: round(rate, 1) for b, (rate, _) in measured.items()}
    cpu_per_image = {b: round(cpu, 3) for b, (_, cpu) in measured.items()}
    report["ceiling"] = {
        "processes": cores,
        "torch_threads_each": 1,
        "images_per_s": rates,
        "cpu_ms_per_image": cpu_per_image,
    }
    log(f"  {rates} images/s; CPU ms per image {cpu_per_image}; one image alone {report['single_image_ms']}")

    if attached is not None:
        if args.warmup:
            warm_up(attached, bodies, args.warmup, args.warmup_rounds)
        for concurrency in args.concurrency:
            points.append(measure(attached, configs[0], bodies, concurrency, counts(concurrency)))
            log_point(points[-1], log)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
            store = Path(work, "store")
            build_archive(args.checkpoint, store)
            for index, config in enumerate(configs):
                workdir = Path(work, f"{index}-{config['name']}")
                workdir.mkdir()
                warmup = (args.warmup, args.warmup_rounds)
                points += run_config(config, store, workdir, bodies, args.concurrency, counts, warmup, extra, log)
    for point in points:
        point["ceiling_images_per_s"] = rates[point["batch_size"]] if point["batch_size"] in rates else None
        point["fraction_of_ceiling"] = round(point["rps"] / point["ceiling_images_per_s"], 3)
        # The same ratio in CPU time: the handler's in-process CPU per image over all the CPU one
        # served request costs (frontend, workers, wrk). Unlike req/s it holds on a busy machine.
        total_cpu = sum(point["cpu_ms_per_request"].values())
        point["cpu_efficiency"] = round(cpu_per_image[point["batch_size"]] / total_cpu, 3) if total_cpu else None
    report["points"] = points
    single = [p for p in points if p["concurrency"] == 1]
    if single:
        report["profile_c1"] = request_profile(single[0], report["single_image_ms"])
    report["fields"] = list(FIELDS)
    report["settings"] = {
        "requests": args.requests,
        "requests_c1": args.requests_c1,
        "warmup": args.warmup,
        "warmup_rounds_max": args.warmup_rounds,
        "set": extra,
    }
    return report


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.plot)
    table = markdown(report)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table)
    print(table)
    print(f"wrote {args.out}, {args.plot}, {args.markdown}")
    return 0


def _decode_like_the_workers() -> None:
    """Restart this process on zlib-ng when the workers get it (scripts.serving) and it has not.

    The in-process figures must inflate the PNGs with the workers' zlib, and the dynamic linker
    reads LD_LIBRARY_PATH only when a process starts.
    """
    env = zlib_ng_env(os.environ)
    restarted = env and os.environ.get("LD_LIBRARY_PATH") == env["LD_LIBRARY_PATH"]
    if env and not restarted and "zlib-ng" not in zlib.ZLIB_RUNTIME_VERSION:
        os.execve(sys.executable, [sys.executable, "-m", "scripts.bench_serve", *sys.argv[1:]], {**os.environ, **env})


if __name__ == "__main__":
    _decode_like_the_workers()
    sys.exit(main())
