"""`make monitor` / `make monitor-stop` (scripts.monitoring.monitor) against a real TorchServe."""

import json
import shutil
import subprocess
import sys

import psutil
import pytest
import requests

from scripts.serving.config import free_ports
from scripts.serving.paths import ROOT
from scripts.serving.process import serve_checkpoint
from tests.support import untrained_checkpoint

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not shutil.which("prometheus"), reason="no prometheus (Debian: apt-get install prometheus)"),
]


def monitor(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scripts.monitoring.monitor", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_monitor_without_a_server_fails_in_one_line(tmp_path):
    result = monitor("start", "--run-dir", str(tmp_path / "logs"), "--out", str(tmp_path / "monitor"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: no TorchServe running from {tmp_path / 'logs'}: `make serve` first"
    ]


def test_monitor_scrapes_the_running_server_and_stops(tmp_path):
    server = serve_checkpoint(untrained_checkpoint(tmp_path / "untrained.pth"), tmp_path, workers=1)
    out, ports = tmp_path / "monitor", free_ports(["prometheus", "exporter"])
    options = ["--run-dir", str(server.run_dir), "--out", str(out), "--port", str(ports["prometheus"])]
    options += ["--exporter-port", str(ports["exporter"])]
    try:
        started = monitor(
            "start", *options, "--port", str(ports["prometheus"]), "--exporter-port", str(ports["exporter"])
        )
        assert started.returncode == 0, started.stderr
        url = f"http://127.0.0.1:{ports['prometheus']}"
        assert f"Prometheus is up on {url}" in started.stdout and "make monitor-stop" in started.stdout
        up = requests.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=10).json()["data"]["result"]
        assert {(s["metric"]["job"], s["value"][1]) for s in up} == {("mnist-serve", "1"), ("torchserve-workers", "1")}
        again = monitor(
            "start", *options, "--port", str(ports["prometheus"]), "--exporter-port", str(ports["exporter"])
        )
        assert again.returncode == 1 and "running already" in again.stderr
        pids = json.loads((out / "monitor.json").read_text())
    finally:
        stopped = monitor("stop", "--out", str(out))
        server.stop()
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not any(psutil.pid_exists(pids[name]) for name in ("prometheus", "exporter"))
    assert "no Prometheus" in monitor("stop", "--out", str(out)).stdout
