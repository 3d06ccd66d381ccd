"""scripts.monitoring.workers when the management API does not answer (the live case: test_monitoring_e2e.py)."""

import subprocess
import sys

import pytest

from scripts.monitoring.workers import WorkerCollector
from scripts.serving.client import Client
from scripts.serving.config import free_ports
from scripts.serving.paths import ROOT

pytestmark = pytest.mark.unit


def test_an_unreachable_management_api_is_reported_not_raised():
    port = free_ports(["nobody"])["nobody"]  # nothing listens there
    collector = WorkerCollector(Client("", f"http://127.0.0.1:{port}", "", "", None), timeout=2)
    families = {family.name: family for family in collector.collect()}
    assert list(families) == ["torchserve_management_up"]
    assert [sample.value for sample in families["torchserve_management_up"].samples] == [0]


def test_without_a_server_it_says_so_in_one_line(tmp_path):
    command = [sys.executable, "-m", "scripts.monitoring.workers", "--run-dir", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: no TorchServe running from {tmp_path}: `make serve` first, or give --management"
    ]
