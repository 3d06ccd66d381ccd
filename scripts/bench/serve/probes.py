"""What happens inside the server during a point: CPU by process and TorchServe's metrics."""

import resource

import psutil

from scripts.serving.process import Server

# TorchServe's cumulative request counters and microsecond latencies, and the handler's batch counters.
METRICS = (
    "ts_inference_requests_total",
    "ts_inference_latency_microseconds",
    "ts_queue_latency_microseconds",
    "InferenceBatches",
    "InferenceImages",
)


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


def scrape(server: Server) -> dict[str, float]:
    return server.metric_totals(METRICS)


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
