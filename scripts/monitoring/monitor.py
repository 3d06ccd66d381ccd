"""A local Prometheus for the running server (``make monitor`` / ``make monitor-stop``).

    python -m scripts.monitoring.monitor start [--port 9090] [--exporter-port 9091]
    python -m scripts.monitoring.monitor stop

``start`` finds the server ``make serve`` started (logs/), starts the worker exporter and Debian's
``prometheus`` in the background with deploy/monitoring/prometheus.yml's jobs and rules pointed at
its ports (build/monitor/), waits until Prometheus has scraped it, and prints where to look.
``stop`` ends both. They keep running when TorchServe stops (the MnistServeDown alert says so).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
import yaml

from scripts.cli import fail, positive_int
from scripts.serving.errors import ServeError
from scripts.serving.process import Server

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
STATE = "monitor.json"
READY_TIMEOUT = 60.0


def render_config(metrics: str, exporter: str, interval: str = "5s") -> dict:
    """deploy/monitoring/prometheus.yml with its targets moved to ``metrics`` and ``exporter`` (host:port)."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(MONITORING / name) for name in config["rule_files"]]
    targets = {"mnist-serve": metrics, "torchserve-workers": exporter}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def start(run_dir: Path, out: Path, port: int, exporter_port: int) -> dict:
    if not shutil.which("prometheus"):
        raise ServeError("no prometheus on PATH (Debian: apt-get install prometheus)")
    if running(out):
        raise ServeError(f"a Prometheus from {out} is running already: `make monitor-stop` first")
    server = Server.load(run_dir)
    if server is None:
        raise ServeError(f"no TorchServe running from {run_dir}: `make serve` first")
    out.mkdir(parents=True, exist_ok=True)
    metrics = server.metrics.removeprefix("http://").removeprefix("https://")
    config = render_config(metrics, f"127.0.0.1:{exporter_port}")
    (out / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    logs = open(out / "monitor.log", "a")  # noqa: SIM115 (the children keep it)
    exporter_command = [sys.executable, "-m", "scripts.monitoring.workers", "--run-dir", str(run_dir)]
    exporter = subprocess.Popen(
        [*exporter_command, "--port", str(exporter_port)], cwd=ROOT, stdout=logs, stderr=logs, start_new_session=True
    )
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={out / 'prometheus.yml'}",
            f"--storage.tsdb.path={out / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=logs,
        stderr=logs,
        start_new_session=True,
    )
    state = {"prometheus": prometheus.pid, "exporter": exporter.pid, "url": f"http://127.0.0.1:{port}"}
    (out / STATE).write_text(json.dumps(state))
    wait_scraped(state["url"], prometheus, out)
    return state


def wait_scraped(url: str, prometheus: subprocess.Popen, out: Path) -> None:
    """Until both targets are up in Prometheus; the log's tail when Prometheus exits instead."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if prometheus.poll() is not None:
            stop(out)
            tail = (out / "monitor.log").read_text().splitlines()[-5:]
            raise ServeError("prometheus exited:\n  " + "\n  ".join(tail))
        try:
            answer = requests.get(f"{url}/api/v1/query", params={"query": "sum(up)"}, timeout=2).json()
            if answer["data"]["result"] and float(answer["data"]["result"][0]["value"][1]) == 2:
                return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise ServeError(f"Prometheus did not scrape both targets within {READY_TIMEOUT:.0f} s: see {out / 'monitor.log'}")


def ours(state: dict) -> list[psutil.Process]:
    """The recorded processes that are still the ones started here."""
    alive = []
    for name, marker in (("prometheus", "prometheus"), ("exporter", "scripts.monitoring.workers")):
        try:
            process = psutil.Process(state[name])
            if marker in " ".join(process.cmdline()):
                alive.append(process)
        except (psutil.Error, KeyError):
            pass
    return alive


def running(out: Path) -> bool:
    path = out / STATE
    return path.is_file() and bool(ours(json.loads(path.read_text())))


def stop(out: Path) -> int:
    """Terminate the recorded Prometheus and exporter; how many were running."""
    path = out / STATE
    if not path.is_file():
        return 0
    processes = ours(json.loads(path.read_text()))
    for process in processes:
        process.send_signal(signal.SIGTERM)
    gone, alive = psutil.wait_procs(processes, timeout=30)
    for process in alive:
        process.kill()
    path.unlink()
    return len(processes)


def where_to_look(url: str) -> str:
    return "\n".join(
        [
            f"Prometheus is up on {url}, scraping TorchServe and its workers every 5 s.",
            f"  graphs:  {url}/graph?g0.expr=sum(rate(ts_inference_requests_total[1m]))",
            f"  alerts:  {url}/alerts  (deploy/monitoring/rules.yml; what to do: docs/monitoring.md)",
            f"  targets: {url}/targets",
            "  Grafana: import deploy/monitoring/dashboard.json with this Prometheus as its data source.",
            "  Stop it with `make monitor-stop` (data stays in build/monitor/).",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.monitoring.monitor", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--run-dir", type=Path, default=ROOT / "logs", help="the running server's run folder (logs)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "monitor", help="configuration, data, logs")
    parser.add_argument("--port", type=positive_int, default=9090, help="Prometheus's port on 127.0.0.1 (9090)")
    parser.add_argument("--exporter-port", type=positive_int, default=9091, help="the worker exporter's port (9091)")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stopped = stop(args.out)
        print("Prometheus and the worker exporter stopped." if stopped else "no Prometheus from make monitor runs.")
        return 0
    try:
        state = start(args.run_dir, args.out, args.port, args.exporter_port)
    except (ServeError, OSError) as error:
        return fail(str(error))
    print(where_to_look(state["url"]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
