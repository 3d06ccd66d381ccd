"""Configurations, warm-up and measured points: one TorchServe per configuration, wrk at each concurrency."""

import re
import tempfile
import time
from pathlib import Path

from scripts.bench.serve.load import wrk
from scripts.bench.serve.probes import cpu_seconds, scrape, server_profile
from scripts.bench.serve.schema import Point
from scripts.serving.config import configure
from scripts.serving.errors import ServeError
from scripts.serving.process import Server, serve_checkpoint
from scripts.serving.warmup import JIT_QUIET, jit_cpu_seconds

CONFIG_PATTERN = re.compile(r"^w(\d+)-b(\d+)-d(\d+)$")
# Warm-up rounds repeat until the JVM's JIT compiler threads use less than this share of a core,
# in QUIET_ROUNDS rounds in a row: compilation comes in waves, and one quiet round is often a lull.
QUIET_ROUNDS = 2


def parse_config(name: str) -> dict:
    """``w2-b8-d1`` -> configure() overrides; ``default`` -> none (the shipped configuration)."""
    if name == "default":
        return {}
    match = CONFIG_PATTERN.match(name)
    if not match:
        raise ServeError(f"bad configuration {name!r}: use 'default' or w<workers>-b<batch size>-d<delay ms>")
    workers, batch, delay = (int(g) for g in match.groups())
    overrides = {"workers": workers, "batch_size": batch, "max_batch_delay_ms": delay}
    configure(**overrides)  # refuses what TorchServe cannot run, before any server starts
    return overrides


def warm_up(server: Server, bodies: list[Path], requests: int, max_rounds: int) -> int:
    """Rounds of ``requests`` answers at concurrency 32 until the JIT compilers are quiet; the rounds sent.

    Each round also reads the metrics API, as every measured point does: the first reads set off
    a wave of recompilation in the JVM that would land in the next point's tail latency.
    """
    rounds = quiet = 0
    while rounds < max_rounds and quiet < QUIET_ROUNDS:
        before, start = jit_cpu_seconds(server.pid), time.monotonic()
        scrape(server)
        wrk(server, bodies, 32, requests)
        scrape(server)
        rounds += 1
        after = jit_cpu_seconds(server.pid)
        if before is None or after is None:
            break
        quiet = quiet + 1 if (after - before) / (time.monotonic() - start) < JIT_QUIET else 0
    return rounds


def settings(name: str, server: Server) -> dict:
    """The point fields that describe the configuration, as the running server reports it."""
    description = server.describe()
    return {
        "config": name,
        "workers": len(description.get("workers", [])),
        "batch_size": description.get("batchSize", 1),
        "max_batch_delay_ms": description.get("maxBatchDelay", 0),
    }


def measure(server: Server, config: dict, bodies: list[Path], concurrency: int, count: int) -> Point:
    """One point: wrk's figures, TorchServe's per-request means, CPU ms per request by process."""
    metrics, cpu, jit = scrape(server), cpu_seconds(server), jit_cpu_seconds(server.pid)
    result = wrk(server, bodies, concurrency, count)
    cpu = [after - before for before, after in zip(cpu, cpu_seconds(server), strict=True)]
    jit_after = jit_cpu_seconds(server.pid)
    # Compilation bursts during a point are what its p99 is most sensitive to.
    result["jit_cpu_ms"] = round((jit_after - jit) * 1000) if jit is not None and jit_after is not None else None
    result.update(server_profile(metrics, scrape(server)))
    n = max(result["requests"], 1)
    result["cpu_ms_per_request"] = {
        name: round(seconds / n * 1000, 3) for name, seconds in zip(("frontend", "workers", "wrk"), cpu, strict=True)
    }
    return Point(**config, concurrency=concurrency, **result)


def log_point(point: Point, log) -> None:
    cpu = point.cpu_ms_per_request
    log(
        f"  c={point.concurrency:<3} {point.rps:8.1f} req/s  p50 {point.p50_ms:6.2f}  "
        f"p90 {point.p90_ms:6.2f}  p99 {point.p99_ms:6.2f} ms  non-200 {point.non_200}  "
        f"batch {point.mean_batch}  cpu ms/req: java {cpu['frontend']:.2f} workers {cpu['workers']:.2f}  "
        f"JIT {point.jit_cpu_ms} ms"
    )


def measure_server(server, name, bodies, concurrencies, counts, warmup, log) -> list[Point]:
    """Warm ``server`` up (``warmup``: answers per round, most rounds), then one point per concurrency."""
    rounds = warm_up(server, bodies, *warmup) if warmup[0] else 0
    log(f"  warmed up: {rounds} round(s) of {warmup[0]} answers")
    config = settings(name, server)
    points = []
    for concurrency in concurrencies:
        point = measure(server, config, bodies, concurrency, counts(concurrency))
        point.warmup_rounds = rounds
        log_point(point, log)
        points.append(point)
    return points


def sweep(checkpoint, names, bodies, concurrencies, counts, warmup, extra, log) -> list[Point]:
    """Each named configuration on a server of its own, started and stopped here."""
    configs = {name: parse_config(name) for name in names}
    points = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        for index, (name, overrides) in enumerate(configs.items()):
            log(f"{name}: starting TorchServe ...")
            server = serve_checkpoint(checkpoint, Path(work, f"{index}-{name}"), properties=extra, **overrides)
            try:
                points += measure_server(server, name, bodies, concurrencies, counts, warmup, log)
            finally:
                server.stop()
    return points
