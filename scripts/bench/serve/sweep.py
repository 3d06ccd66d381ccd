"""Configurations, warm-up and measured points: one TorchServe per configuration, wrk at each concurrency."""

import re
import tempfile
import time
from pathlib import Path

from scripts.bench.serve.baseline import swap_code
from scripts.bench.serve.load import wrk
from scripts.bench.serve.probes import cpu_seconds, scrape, server_profile
from scripts.bench.serve.schema import Point
from scripts.serving.archive import build_archive
from scripts.serving.config import configure
from scripts.serving.errors import ServeError
from scripts.serving.process import Server, serve_checkpoint, serve_store
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


def sweep(checkpoint, names, loads, sides, concurrencies, counts, warmup, extra, log, rounds=1) -> list[Point]:
    """Each named configuration on a server of its own per side, started and stopped here.

    ``loads``: {name: picture files}; ``sides``: {"this": None} or {"before": baseline tree, "after": None}.
    With two sides both servers run at once and take turns at every point, ``rounds`` times: both
    see the same machine. Every load at every concurrency is measured on each side.
    """
    configs = {name: parse_config(name) for name in names}
    every_body = sorted({path for bodies in loads.values() for path in bodies})
    points = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        for index, (name, overrides) in enumerate(configs.items()):
            servers = {}
            try:
                for side, tree in sides.items():
                    log(f"{name} ({side}): starting TorchServe ...")
                    servers[side] = _start(checkpoint, tree, Path(work, f"{index}-{name}-{side}"), extra, overrides)
                warmed = {}
                for side, server in servers.items():
                    warmed[side] = warm_up(server, every_body, *warmup) if warmup[0] else 0
                    log(f"  {side} warmed up: {warmed[side]} round(s) of {warmup[0]} answers")
                for turn in range(rounds):
                    for load, bodies in loads.items():
                        for concurrency in concurrencies:
                            for side, server in servers.items():
                                config = settings(name, server)
                                point = measure(server, config, bodies, concurrency, counts(concurrency))
                                point.load, point.code, point.warmup_rounds = load, side, warmed[side]
                                log(f"  round {turn + 1} {load} {side}:")
                                log_point(point, log)
                                points.append(point)
            finally:
                for server in servers.values():
                    server.stop()
    return points


def _start(checkpoint, tree, workdir: Path, extra: dict, overrides: dict) -> Server:
    """A server of this tree's archive, or with ``tree``, of the same archive carrying the baseline's code."""
    if tree is None:
        return serve_checkpoint(checkpoint, workdir, properties=extra, **overrides)
    store = workdir / "store"
    mar = build_archive(checkpoint, store, configure(**overrides).model)
    swap_code(mar, tree)
    return serve_store(store, workdir, properties=extra, **overrides)
