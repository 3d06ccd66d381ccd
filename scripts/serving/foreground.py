"""TorchServe in the foreground, as the container runs it (``python -m scripts.serving run``).

Start TorchServe, warm it up, then create ``<run-dir>/ready`` (the readiness probe's marker) and
wait. SIGTERM or SIGINT stops it gracefully: the marker goes first (so probes, and any client
that follows them, stop sending), then a drain period lets requests already sent arrive and be
answered, then TorchServe stops. TorchServe's own SIGTERM handling closes every connection at
once, requests in flight included (docs/deploy.md), hence this order.
"""

import os
import signal
import threading
import time
from pathlib import Path

from scripts.serving.config import configure
from scripts.serving.errors import ServeError
from scripts.serving.health import READY_MARKER
from scripts.serving.process import Server, start
from scripts.serving.warmup import warm_up

# The frontend's JVM options in the container (env MNIST_SERVE_VMARGS replaces them; empty: the JVM's defaults).
# C1 only: the frontend's hot code is compiled once, early, instead of being recompiled by C2 in waves over
# tens of thousands of requests, so the warm-up can end as soon as the JIT is quiet; the workers, not the
# frontend, bound the throughput (docs/deploy.md has the measurements).
VMARGS_ENV = "MNIST_SERVE_VMARGS"
VMARGS = "-XX:TieredStopAtLevel=1"
# With C1 only, the JIT goes quiet after a few thousand requests; the warm-up needs no more than this.
WARMUP_REQUESTS = 5_000
# Requests still arriving after the marker is gone are answered for this long.
DRAIN_SECONDS = 5.0
# The queue must stay empty this long before TorchServe stops.
QUIET_SECONDS = 0.5


def run(
    run_dir: Path,
    warmup_seconds: float,
    drain_seconds: float = DRAIN_SECONDS,
    log=print,
    warmup_requests: int = WARMUP_REQUESTS,
) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a graceful stop, 1 when TorchServe exits by itself."""
    run_dir = Path(run_dir).resolve()
    marker = run_dir / READY_MARKER
    marker.unlink(missing_ok=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # TS_* variables override any setting (enable_envvars_config); keys live in the writable run dir.
    # TorchServe reads the JVM's options from its properties file only, hence MNIST_SERVE_VMARGS.
    properties = {"enable_envvars_config": "true", "vmargs": os.environ.get(VMARGS_ENV, VMARGS) or None}
    config = configure(properties=properties).write(run_dir / "config.properties")
    server = start(config, run_dir, cwd=run_dir)
    try:
        log(f"TorchServe is up (pid {server.pid}) at {server.inference}")
        if not stopping.is_set():
            log(warm_up(server, server.pid, warmup_seconds, stop=stopping, min_requests=warmup_requests).summary())
        if not stopping.is_set():
            marker.write_text(f"{time.time():.0f}\n")
            log("ready")
        while not stopping.wait(1.0):
            if not server.alive():
                marker.unlink(missing_ok=True)
                raise ServeError(f"TorchServe exited by itself (pid {server.pid}); see {run_dir}")
        log("stopping: not ready any more, draining ...")
        marker.unlink(missing_ok=True)
        drain(server, drain_seconds)
        return 0
    finally:
        marker.unlink(missing_ok=True)
        server.stop()
        log(f"TorchServe (pid {server.pid}) stopped")


def drain(server: Server, seconds: float) -> None:
    """Keep serving for ``seconds``, then until TorchServe's queue has been empty for a moment."""
    deadline = time.monotonic() + seconds
    time.sleep(max(0.0, seconds))
    quiet_since = None
    while time.monotonic() < deadline + 10 * max(seconds, 1.0):
        try:
            pending = server.describe().get("jobQueueStatus", {}).get("pendingRequests", 0)
        except ServeError:
            return
        if pending:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            return
        time.sleep(0.05)
