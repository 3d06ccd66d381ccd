"""The in-process figures: the handler's explanations and predictions on one torch thread, IG's step counts,
and the prediction CPU of this handler against a baseline checkout's, alternating."""

import filecmp
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scripts.bench.serve.ceiling import in_process_handler
from scripts.serving.errors import ServeError
from scripts.serving.paths import ROOT

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


def handler_context(metrics, rows: list, explained: bool):
    """TorchServe's Context for one batch of ``rows``, each asking for an explanation or a prediction."""
    from ts.context import Context, RequestProcessor

    context = Context("mnist", ".", {}, 8, None, "0.12.0", metrics=metrics, model_yaml_config={})
    context.request_processor = [RequestProcessor({"explain": str(explained)}) for _ in rows]
    # As a worker sets them: the handler's metrics carry each request's id.
    context.request_ids = metrics.request_ids = {i: f"request-{i}" for i in range(len(rows))}
    return context


def in_process(checkpoint: Path, bodies: list[bytes], repeats: int) -> dict:
    """Handler milliseconds for explanations and predictions, one torch thread; IG error by step count."""
    import torch

    from handler import explain
    from handler.decode import request_image
    from handler.preprocess import to_model_input

    torch.set_num_threads(1)
    handler = in_process_handler(checkpoint)

    metrics = handler_metrics()

    def handle(rows, explained: bool):
        return handler.handle(rows, handler_context(metrics, rows, explained))

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

    torch.set_num_threads(1)
    ours = in_process_handler(checkpoint)
    baseline = baseline_handler_class(baseline_root)()
    baseline.model, baseline.device, baseline.initialized = ours.model, ours.device, True
    metrics = handler_metrics()
    rows = [{"body": bodies[i % len(bodies)]} for i in range(8)]

    def batch_cpu_ms(handler, batches: int = 50) -> float:
        begin = time.process_time()
        for _ in range(batches):
            handler.handle(rows, handler_context(metrics, rows, False))
        return (time.process_time() - begin) / batches * 1000

    samples = {"ours": [], "baseline": []}
    pair = [("ours", ours), ("baseline", baseline)]
    for round_index in range(rounds):
        for name, handler in pair if round_index % 2 == 0 else pair[::-1]:  # neither always goes first
            samples[name].append(batch_cpu_ms(handler))
    ours.context = handler_context(metrics, rows, False)
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
