"""deploy/monitoring against the real thing: Debian's Prometheus scraping a live TorchServe.

TorchServe runs as ``make serve`` runs it (the project's config and archive, free loopback ports),
the worker exporter beside it; Prometheus scrapes both every second and evaluates deploy/monitoring's
rules with their ``for:`` durations cut to zero. The test sends good pictures, non-digits and bad
requests, then evaluates every query of the Grafana dashboard and every alert expression through
Prometheus's HTTP API.
"""

import json
import math
import shutil
import statistics
import subprocess
import sys
import time

import pytest
import requests
import yaml
from PIL import Image, ImageDraw

from scripts.monitoring import plot, rules
from scripts.monitoring import traffic as monitoring_traffic
from scripts.serving.config import free_ports
from scripts.serving.paths import ROOT
from scripts.serving.process import serve_checkpoint
from tests.support import encode, untrained_checkpoint
from tests.test_serve_e2e import GOOD_PNG

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not shutil.which("prometheus"), reason="prometheus not installed (Debian: apt-get install prometheus)"
    ),
]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "dashboard.json"
# Grafana's variables, as the dashboard would set them for this server.
VARIABLES = {"$__rate_interval": "1m", "$model": "mnist"}
GOOD, NON_DIGITS, BAD = 40, 10, 10
FLOOD = 300  # bad requests that make 4xx the majority


def non_digit() -> bytes:
    """A small "photo" of coloured shapes: a picture the server answers, though not of a digit."""
    image = Image.new("RGB", (64, 48), (200, 180, 150))
    draw = ImageDraw.Draw(image)
    draw.rectangle([10, 8, 54, 40], fill=(40, 60, 160))
    draw.ellipse([20, 14, 44, 34], fill=(230, 30, 30))
    return encode(image)


def quick_rules(path):
    """deploy/monitoring/rules.yml with every ``for:`` cut to 0s, so alerts fire on the next evaluation."""
    groups = rules.load_groups()
    for group in groups:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


class Prometheus:
    """Debian's prometheus on a free loopback port, with a private data folder."""

    def __init__(self, workdir, targets: dict[str, str]):
        port = free_ports(["prometheus"])["prometheus"]
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(quick_rules(workdir / "rules.yml"))],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [t]}]} for job, t in targets.items()],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        command = [
            "prometheus",
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
        ]
        command += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
        self.log = open(workdir / "prometheus.log", "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        wait(lambda: self.ready(), "Prometheus ready", 60)

    def ready(self) -> bool:
        assert self.process.poll() is None, "prometheus exited: " + open(self.log.name).read()[-2000:]
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def query(self, expr: str) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> set[str]:
        alerts = requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def wait(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(panel title, legend, PromQL with the variables set) for every target of every panel."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            queries.append((panel["title"], target["legendFormat"], expr))
    return queries


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(server, prometheus, exporter): TorchServe with one worker, the worker exporter, Prometheus scraping both."""
    workdir = tmp_path_factory.mktemp("monitoring")
    server = serve_checkpoint(untrained_checkpoint(workdir / "untrained.pth"), workdir, workers=1)
    processes = []
    try:
        port = free_ports(["workers"])["workers"]
        command = [sys.executable, "-m", "scripts.monitoring.workers", "--run-dir", str(server.run_dir)]
        exporter = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        processes.append(exporter)
        assert "worker counts on" in exporter.stdout.readline()
        metrics = server.metrics.removeprefix("http://")
        prometheus = Prometheus(workdir, {"mnist-serve": metrics, "torchserve-workers": f"127.0.0.1:{port}"})
        processes.append(prometheus)
        wait(lambda: prometheus.value('count(up{job=~"mnist-serve|torchserve-workers"} == 1)') == 2, "both targets up")
        yield server, prometheus
    finally:
        server.stop()
        for process in reversed(processes):
            if isinstance(process, Prometheus):
                process.stop()
            else:
                process.terminate()
                process.wait(timeout=30)


@pytest.fixture(scope="module")
def traffic(stack):
    """Send good pictures, non-digits and bad requests one at a time; the good ones' client latencies (ms).

    One of each goes first: TorchServe's labelled counters appear with their first event, and
    Prometheus must have seen them before the rest, or ``rate()`` has no increase to show.
    """
    server, prometheus = stack
    url, auth = f"{server.inference}/predictions/{server.model}", server.auth("inference")
    picture, bad = non_digit(), [b"not a picture", GOOD_PNG[: len(GOOD_PNG) // 2]]
    latencies = []

    def send(body: bytes, status: int, count: int):
        for _ in range(count):
            begin = time.perf_counter()
            assert requests.post(url, data=body, headers=auth, timeout=30).status_code == status
            if body == GOOD_PNG:
                latencies.append((time.perf_counter() - begin) * 1000)

    for body, status in ((GOOD_PNG, 200), (picture, 200), (bad[0], 400)):
        send(body, status, 1)
    seen = 'sum(ts_inference_requests_total{model_name="mnist"})'
    wait(lambda: prometheus.value(seen) == 3 and prometheus.value("sum(Requests4XX)") == 1, "the first requests")
    send(GOOD_PNG, 200, GOOD - 1)
    send(picture, 200, NON_DIGITS - 1)
    for k in range(BAD - 1):
        send(bad[k % 2], 400, 1)
    total = GOOD + NON_DIGITS + BAD
    wait(lambda: prometheus.value(seen) == total, f"Prometheus to count {total} requests")
    return latencies


def test_prometheus_counts_what_was_sent(stack, traffic):
    _, prometheus = stack
    assert prometheus.value('sum(ts_inference_requests_total{model_name="mnist"})') == GOOD + NON_DIGITS + BAD
    assert prometheus.value("sum(Requests4XX)") == BAD
    assert prometheus.value("sum(QueueTime_count)") == GOOD + NON_DIGITS + BAD
    # Each request came alone, so each was a batch of its own; the bad ones never reach the forward pass.
    assert prometheus.value('sum(InferenceImages{ModelName="mnist"})') == GOOD + NON_DIGITS
    assert prometheus.value('sum(ts_handler_preprocess_count{ModelName="mnist"})') == GOOD + NON_DIGITS + BAD


def test_every_dashboard_query_returns_plausible_data(stack, traffic):
    _, prometheus = stack
    client_p50, client_max = statistics.median(traffic), max(traffic)
    answers = {}
    for title, legend, expr in dashboard_queries():
        result = prometheus.query(expr)
        assert result, f"{title} / {legend}: no data for {expr}"
        values = [float(series["value"][1]) for series in result]
        assert all(math.isfinite(v) and v >= 0 for v in values), f"{title} / {legend}: {values}"
        answers[(title, legend)] = values
    latency = {legend: values[0] for (title, legend), values in answers.items() if title == "Latency (ms)"}
    assert 0 < latency["handler p50"] <= latency["handler p90"] <= latency["handler p99"] <= 10
    # The worker's share of a request is below what the client waits; the frontend's mean lies within it.
    assert latency["handler p50"] <= client_p50
    assert latency["handler p99"] <= client_max
    assert 0 < latency["end-to-end mean"] <= client_max
    queue = {legend: values[0] for (title, legend), values in answers.items() if title == "Queue wait (ms)"}
    assert queue["p99"] <= client_max
    assert answers[("Batch size", "mean batch size")] == [1.0]
    assert answers[("Requests by status", "5xx")] == [0.0]
    assert answers[("Requests by status", "4xx")][0] > 0 and answers[("Requests by status", "predictions")][0] > 0
    stages = {legend: values[0] for (title, legend), values in answers.items() if title.startswith("Handler stages")}
    assert all(value > 0 for value in stages.values()), stages
    assert sum(stages[f"{s} mean"] for s in ("decode+preprocess", "forward", "answers")) <= client_max
    workers = {legend: values for (title, legend), values in answers.items() if title == "Workers"}
    assert workers["configured"] == [1.0] and 1.0 in workers["{{status}}"]
    assert 0 <= answers[("Not-a-digit share", "not a digit")][0] <= 1


def test_every_alert_expression_evaluates_and_none_fires_on_healthy_traffic(stack, traffic):
    _, prometheus = stack
    for group in rules.load_groups():
        for rule in group["rules"]:
            prometheus.query(rule["expr"])  # asserts that Prometheus evaluates it
    time.sleep(2)  # a few evaluations after the traffic
    assert not prometheus.firing() & {"MnistServeDown", "MnistServerErrors", "MnistBadRequests", "MnistWorkersMissing"}


def test_the_error_alert_fires_when_bad_pictures_dominate(stack, traffic):
    server, prometheus = stack
    url, auth = f"{server.inference}/predictions/{server.model}", server.auth("inference")
    for _ in range(FLOOD):
        assert requests.post(url, data=b"not a picture", headers=auth, timeout=30).status_code == 400
    wait(lambda: "MnistBadRequests" in prometheus.firing(), "MnistBadRequests to fire")
    assert "MnistServerErrors" not in prometheus.firing()


def test_the_demonstration_traffic_and_the_panels_figure(stack, traffic, tmp_path):
    server, prometheus = stack
    counts = monitoring_traffic.run(server, seconds=3, concurrency=2, bad_share=0.2, non_digit_share=0.3)
    assert counts["digit 200"] > 0 and counts["non-digit 200"] > 0 and counts["bad 400"] > 0
    assert set(counts) <= {"digit 200", "non-digit 200", "bad 400"}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in panels:
        assert plot.panel_series(prometheus.url, panel, time.time() - 60, time.time(), 1, VARIABLES), panel["title"]
    figure = plot.plot(prometheus.url, 1, tmp_path / "panels.png", rate_interval="10s")
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_the_down_alert_fires_once_torchserve_stops(stack, traffic):
    server, prometheus = stack
    server.stop()
    wait(lambda: "MnistServeDown" in prometheus.firing(), "MnistServeDown", 30)
    assert prometheus.value('up{job="mnist-serve"}') == 0
