"""Explanation latency, and whether predictions pay anything for explanations being served.

    python -m scripts.bench.explain                              # -> reports/bench_explain.json
    python -m scripts.bench.explain --baseline-root /tmp/before  # also A/B predictions against that checkout

In-process (one torch thread, as a worker): captum's import, one explanation and a batch of 8, next
to one prediction; how far the Integrated Gradients map at each step count is from a 400-step one.
Through TorchServe (config.properties on free loopback ports): sequential explanation and prediction
latency, and prediction throughput at concurrency 32 (wrk) before any explanation and after every
worker has served some (captum loaded). With ``--baseline-root`` (a checkout of the bundle before
explanations), its archive serves too, and the two alternate point by point in the same run.
"""

import filecmp
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from scripts.bench.serve.ceiling import in_process_handler
from scripts.bench.serve.report import machine
from scripts.bench.serve.sweep import measure, settings, warm_up
from scripts.cli import OneLineParser, positive_int
from scripts.serving.archive import build_archive
from scripts.serving.errors import ServeError
from scripts.serving.paths import ROOT
from scripts.serving.process import Server, serve_store
from scripts.serving.warmup import sample_bodies

STEP_COUNTS = (8, 16, 32, 50)
REFERENCE_STEPS = 400


def timed(fn, repeats: int) -> dict:
    """Median and 90th percentile milliseconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append((time.perf_counter() - begin) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "p90_ms": round(statistics.quantiles(times, n=10)[-1], 2)}


def captum_import_ms() -> float:
    """Importing captum.attr in a fresh interpreter that already has torch, as a worker does."""
    script = "import time, torch; t = time.perf_counter(); import captum.attr; print((time.perf_counter() - t) * 1000)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise ServeError(f"captum does not import: {result.stderr.strip()[-300:]}")
    return round(float(result.stdout.strip().splitlines()[-1]), 1)


def handler_metrics():
    """The metrics cache a worker gives the handler (the handler's own metrics.yaml)."""
    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    metrics = MetricsCacheYamlImpl(str(ROOT / "handler" / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = "mnist"
    return metrics


def in_process(checkpoint: Path, bodies: list[bytes], repeats: int) -> dict:
    """Handler milliseconds for explanations and predictions, one torch thread; IG error by step count."""
    import torch
    from ts.context import Context, RequestProcessor

    from handler import explain
    from handler.decode import request_image
    from handler.preprocess import to_model_input

    torch.set_num_threads(1)
    handler = in_process_handler(checkpoint)

    metrics = handler_metrics()

    def handle(rows, explained: bool):
        context = Context("mnist", ".", {}, 8, None, "0.12.0", metrics=metrics, model_yaml_config={})
        context.request_processor = [RequestProcessor({"explain": str(explained)}) for _ in rows]
        return handler.handle(rows, context)

    one, eight = [{"body": bodies[0]}], [{"body": bodies[i % len(bodies)]} for i in range(8)]
    handle(one, True)  # captum's import and first-call set-up: measured on their own below
    figures = {
        "steps": explain.STEPS,
        "captum_import_ms": captum_import_ms(),
        "explanation": timed(lambda: handle(one, True), repeats),
        "explanation_batch_of_8": timed(lambda: handle(eight, True), max(5, repeats // 4)),
        "prediction": timed(lambda: handle(one, False), repeats),
    }
    inputs = torch.stack([to_model_input(request_image({"body": body})) for body in bodies])
    with torch.inference_mode():
        digits = handler.model(inputs).argmax(1).tolist()
    reference = explain.integrated_gradients(handler.model, inputs, digits, REFERENCE_STEPS).flatten(1)
    errors, costs = {}, {}
    for steps in STEP_COUNTS:
        maps = explain.integrated_gradients(handler.model, inputs, digits, steps).flatten(1)
        errors[steps] = round(float(((maps - reference).norm(dim=1) / reference.norm(dim=1)).max()), 4)
        costs[steps] = timed(lambda s=steps: explain.integrated_gradients(handler.model, inputs[:1], digits[:1], s), 10)
    figures["ig_worst_relative_l2_error_vs_400_steps"] = errors
    figures["ig_one_picture_by_steps"] = costs
    return figures


def baseline_handler_class(root: Path):
    """The checkout's MnistHandler, loaded beside ours: its other handler modules must be ours, unchanged."""
    for name in ("decode.py", "preprocess.py"):
        if not filecmp.cmp(root / "handler" / name, ROOT / "handler" / name, shallow=False):
            raise ServeError(f"{root}/handler/{name} differs from ours: the A/B compares mnist_handler.py only")
    spec = importlib.util.spec_from_file_location("baseline_mnist_handler", root / "handler" / "mnist_handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MnistHandler


def prediction_cpu_ab(checkpoint: Path, bodies: list[bytes], baseline_root: Path, rounds: int) -> dict:
    """CPU ms per batch of 8 predictions through handle(), ours and the baseline's handler, alternating."""
    import torch
    from ts.context import Context, RequestProcessor

    torch.set_num_threads(1)
    ours = in_process_handler(checkpoint)
    baseline = baseline_handler_class(baseline_root)()
    baseline.model, baseline.device, baseline.initialized = ours.model, ours.device, True
    metrics = handler_metrics()
    rows = [{"body": bodies[i % len(bodies)]} for i in range(8)]

    def batch_cpu_ms(handler, batches: int = 50) -> float:
        begin = time.process_time()
        for _ in range(batches):
            context = Context("mnist", ".", {}, 8, None, "0.12.0", metrics=metrics, model_yaml_config={})
            context.request_processor = [RequestProcessor({"explain": "False"}) for _ in rows]
            handler.handle(rows, context)
        return (time.process_time() - begin) / batches * 1000

    samples = {"ours": [], "baseline": []}
    pair = [("ours", ours), ("baseline", baseline)]
    for round_index in range(rounds):
        for name, handler in pair if round_index % 2 == 0 else pair[::-1]:  # neither always goes first
            samples[name].append(batch_cpu_ms(handler))
    context = Context("mnist", ".", {}, 8, None, "0.12.0", metrics=metrics, model_yaml_config={})
    context.request_processor = [RequestProcessor({"explain": "False"}) for _ in rows]
    ours.context = context
    calls = 20_000
    begin = time.perf_counter()
    for _ in range(calls):
        ours._is_explain()
    is_explain_us = (time.perf_counter() - begin) / calls * 1e6
    medians = {name: round(statistics.median(values), 3) for name, values in samples.items()}
    return {
        "cpu_ms_per_batch_of_8": medians,
        "ours_vs_baseline": round(medians["ours"] / medians["baseline"] - 1, 4),
        "is_explain_us_per_batch_of_8": round(is_explain_us, 2),
        "rounds": rounds,
    }


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


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m scripts.bench.explain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="weights (mnist_cnn.pth)")
    parser.add_argument("--baseline-root", type=Path, help="a checkout without explanations, served alongside")
    parser.add_argument("--repeats", type=positive_int, default=40, help="in-process timings per figure (40)")
    parser.add_argument(
        "--explanations", type=positive_int, default=60, help="sequential requests through the server (60)"
    )
    parser.add_argument("--requests", type=positive_int, default=5000, help="answers per concurrency-32 point (5000)")
    parser.add_argument("--rounds", type=positive_int, default=2, help="concurrency-32 points per server and phase (2)")
    parser.add_argument("--warmup", type=positive_int, default=3000, help="answers per warm-up round (3000)")
    parser.add_argument("--skip-server", action="store_true", help="in-process figures only")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_explain.json"), help="JSON report")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not args.checkpoint.is_file():
            raise ServeError(f"no checkpoint at {args.checkpoint}: run `make train` first")
        if args.baseline_root and not (args.baseline_root / "scripts" / "serving.py").exists():
            raise ServeError(f"{args.baseline_root} is not a checkout of this bundle")
        if min(args.repeats, args.explanations, args.requests, args.rounds) < 1 or args.repeats < 2:
            raise ServeError("counts start at 1 (--repeats at 2)")
        bodies = sample_bodies()
        command = " ".join(["python -m scripts.bench.explain", *(argv or sys.argv[1:])])
        report = {"machine": machine(), "command": command}
        print("in-process, one torch thread ...", flush=True)
        report["in_process"] = in_process(args.checkpoint, [p.read_bytes() for p in bodies], args.repeats)
        print(json.dumps(report["in_process"], indent=1), flush=True)
        if args.baseline_root:
            body_bytes = [p.read_bytes() for p in bodies]
            report["prediction_cpu_ab"] = prediction_cpu_ab(args.checkpoint, body_bytes, args.baseline_root, 20)
            print(json.dumps(report["prediction_cpu_ab"]), flush=True)
        if not args.skip_server:
            report["server"] = through_the_server(args, bodies, lambda line: print(line, flush=True))
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.get("server", {}).items() if k != "predictions_c32"}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
