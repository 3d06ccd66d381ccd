"""The load: wrk sending real PNG uploads with the inference key (``wrk.lua``), a fixed number of answers."""

import json
import shutil
import subprocess
from pathlib import Path

from scripts.serving.client import Client
from scripts.serving.errors import ServeError

LUA = Path(__file__).with_name("wrk.lua")


def wrk(client: Client, bodies: list[Path], concurrency: int, count: int, threads: int = 1) -> dict:
    """``count`` answers at ``concurrency`` connections; wrk.lua's JSON (latencies in ms, statuses)."""
    if shutil.which("wrk") is None:
        raise ServeError("wrk is not installed: apt-get install wrk (.ci/run installs it)")
    threads = max(1, min(threads, concurrency))
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", "-d600s", "--timeout", "30s", "-s", str(LUA)]
    command += [client.predictions_url, "--", str(max(1, count // threads)), client.key("inference")]
    command += [str(body) for body in bodies]
    result = subprocess.run(command, capture_output=True, text=True, timeout=660)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise ServeError(f"wrk gave no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line.removeprefix("BENCH_JSON "))
