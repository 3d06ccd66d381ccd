"""TorchServe's worker count on a Prometheus endpoint: TorchServe's own metrics do not carry it.

    python -m scripts.monitoring.workers --run-dir logs --port 9091           # next to `make serve`
    python -m scripts.monitoring.workers --management http://127.0.0.1:8081   # a pod's sidecar, token auth off

Each scrape asks the management API to describe every model and answers
``torchserve_model_workers{model, status}`` (workers per status: READY, UNLOADING, ...) and
``torchserve_model_workers_min{model}`` (the count it should keep, ``make scale`` sets it), plus
``torchserve_management_up`` (0 when the management API did not answer). The MnistWorkersMissing
alert (deploy/monitoring/rules.yml) compares the first two.
"""

import argparse
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

import requests
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from scripts.cli import fail, positive_int
from scripts.serving.client import Client
from scripts.serving.errors import ServeError
from scripts.serving.process import Server

STATUSES = ("READY", "UNLOADING", "UNREGISTERED", "STOPPED", "STARTED")


class WorkerCollector(Collector):
    """Collects the worker counts from one TorchServe's management API at scrape time."""

    def __init__(self, client: Client, timeout: float = 5.0):
        self.client = client
        self.timeout = timeout

    def models(self) -> list[dict]:
        """The management API's description of every model (one entry per version)."""
        headers = self.client.auth("management")
        listing = requests.get(f"{self.client.management}/models", headers=headers, timeout=self.timeout)
        listing.raise_for_status()
        described = []
        for model in listing.json().get("models", []):
            url = f"{self.client.management}/models/{model['modelName']}/all"
            response = requests.get(url, headers=headers, timeout=self.timeout)
            response.raise_for_status()
            described += response.json()
        return described

    def collect(self):
        up = GaugeMetricFamily("torchserve_management_up", "1 when TorchServe's management API answered this scrape")
        workers = GaugeMetricFamily(
            "torchserve_model_workers", "TorchServe workers of a model, by status", labels=["model", "status"]
        )
        minimum = GaugeMetricFamily(
            "torchserve_model_workers_min", "The workers TorchServe keeps for a model (minWorkers)", labels=["model"]
        )
        try:
            described = self.models()
        except (requests.RequestException, ServeError, ValueError, KeyError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for model in described:
            name = model["modelName"]
            counts = Counter(worker.get("status", "UNKNOWN") for worker in model.get("workers", []))
            for status in sorted(set(STATUSES) | set(counts)):
                workers.add_metric([name, status], counts.get(status, 0))
            minimum.add_metric([name], model.get("minWorkers", 0))
        yield from (up, workers, minimum)


def client_for(args) -> Client:
    if args.management:
        return Client("", args.management.rstrip("/"), "", "", args.key_file)
    server = Server.load(args.run_dir)
    if server is None:
        raise ServeError(f"no TorchServe running from {args.run_dir}: `make serve` first, or give --management")
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.monitoring.workers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("logs"), help="the running server's run folder (logs)")
    parser.add_argument("--management", help="the management API's URL instead of --run-dir's server")
    parser.add_argument("--key-file", type=Path, help="with --management: TorchServe's key_file.json, if tokens are on")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=positive_int, default=9091, help="port of /metrics (9091)")
    args = parser.parse_args(argv)
    try:
        client = client_for(args)
    except ServeError as error:
        return fail(str(error))
    REGISTRY.register(WorkerCollector(client))
    try:
        start_http_server(args.port, addr=args.address)
    except OSError as error:
        return fail(f"cannot listen on {args.address}:{args.port}: {error.strerror}")
    print(f"worker counts on http://{args.address}:{args.port}/metrics (from {client.management})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
