"""Warm TorchServe up before it reports ready.

Its Java frontend is compiled by the JVM's JIT while it serves: for the first tens of thousands
of requests, latency is higher and more variable than it settles to (docs/performance.md).
TorchServe has no warm-up setting, so the bundle sends real predictions (and reads the metrics
API, as monitoring will) until the JIT compilers go quiet or the time is up.
"""

import http.client
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from scripts.serving.client import Client
from scripts.serving.errors import ServeError
from scripts.serving.paths import SAMPLES

# The longest warm-up by default (`make serve WARMUP=...`, `start --warmup`).
WARMUP_SECONDS = 60.0
# The JIT counts as quiet below this share of a core, over QUIET_WINDOWS windows in a row, and only
# once MIN_REQUESTS predictions have been answered: the compilers pause between waves, and a pause
# early on (a few thousand requests in) ended warm-ups whose next wave then hit the first users.
JIT_QUIET = 0.02
WINDOW_S = 2.0
QUIET_WINDOWS = 3
MIN_REQUESTS = 20_000


@dataclass
class Warmup:
    """What a warm-up did."""

    seconds: float
    requests: int
    failures: int
    jit_quiet: bool

    def summary(self) -> str:
        settled = "the JIT compilers went quiet" if self.jit_quiet else "time limit reached"
        return f"warmed up in {self.seconds:.1f} s: {self.requests} predictions, {self.failures} failed; {settled}"


def sample_bodies(folder: Path = SAMPLES) -> list[Path]:
    """The sample PNGs a user might send, without the deliberately blank one."""
    paths = [p for p in sorted(Path(folder).glob("*.png")) if not p.stem.startswith("blank")]
    if not paths:
        raise ServeError(f"no sample PNGs in {folder}")
    return paths


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


def warm_up(
    client: Client,
    pid: int | None,
    max_seconds: float,
    concurrency: int = 16,
    stop: threading.Event | None = None,
    min_requests: int = MIN_REQUESTS,
) -> Warmup:
    """Predictions at ``concurrency`` until the JIT is quiet after ``min_requests`` (when ``pid``'s threads can
    be read), ``max_seconds`` have passed or ``stop`` is set."""
    begin = time.monotonic()
    if max_seconds <= 0:
        return Warmup(0.0, 0, 0, False)
    cancelled = stop or threading.Event()
    bodies = [path.read_bytes() for path in sample_bodies()]
    headers = {**client.auth("inference"), "Content-Type": "image/png"}
    done = threading.Event()
    counts = {"requests": 0, "failures": 0}
    answered = [0] * concurrency  # per sender, read while they run
    lock = threading.Lock()

    def send(offset: int) -> None:
        url = urlparse(client.predictions_url)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        sent = failed = 0
        try:
            while not done.is_set():
                try:
                    connection.request("POST", url.path, body=bodies[(offset + sent) % len(bodies)], headers=headers)
                    response = connection.getresponse()
                    response.read()
                    failed += response.status != 200
                except (OSError, http.client.HTTPException):
                    failed += 1
                    connection.close()
                sent += 1
                answered[offset] = sent
        finally:
            connection.close()
            with lock:
                counts["requests"] += sent
                counts["failures"] += failed

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    quiet, jit_quiet = 0, False
    try:
        while time.monotonic() - begin < max_seconds and not cancelled.is_set():
            before = jit_cpu_seconds(pid) if pid else None
            window = min(WINDOW_S, max(0.0, max_seconds - (time.monotonic() - begin)))
            cancelled.wait(window)
            try:
                client.metric_totals(("ts_inference_requests_total",))
            except (ServeError, OSError):
                pass
            after = jit_cpu_seconds(pid) if pid else None
            if before is not None and after is not None and window > 0:
                quiet = quiet + 1 if (after - before) / window < JIT_QUIET else 0
                if quiet >= QUIET_WINDOWS and sum(answered) >= min_requests:
                    jit_quiet = True
                    break
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=35)
    return Warmup(round(time.monotonic() - begin, 1), counts["requests"], counts["failures"], jit_quiet)
