"""The container's entrypoint, run on the host in a folder laid out as the image (scripts/serving/image.py).

No container engine is needed: the image runs `python -m scripts.serving --run-dir run run` in its
working directory, with TorchServe's settings in TS_* variables; so does this test.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from scripts.serving.config import API_NAMES, free_ports
from scripts.serving.image import CONTENTS, stage_image
from tests.support import untrained_checkpoint

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "7_mnist.png"


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("image")
    image_dir = stage_image(untrained_checkpoint(workdir / "w.pth"), workdir / "srv")
    (image_dir / "run").mkdir()  # the Dockerfile makes it, owned by the server's user
    return image_dir


def entrypoint_env(ports: dict[str, int], **extra) -> dict:
    """What deploy/Dockerfile and deploy/k8s/deployment.yaml set, on free loopback ports."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TS_", "MNIST_SERVE_"))}
    env |= {
        "PYTHONPATH": "",  # the image's own scripts/, from its working directory
        "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{ports['inference']}",
        "TS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{ports['management']}",
        "TS_METRICS_ADDRESS": f"http://127.0.0.1:{ports['metrics']}",
        "TS_GRPC_INFERENCE_PORT": str(ports["grpc_inference"]),
        "TS_GRPC_MANAGEMENT_PORT": str(ports["grpc_management"]),
        "TS_DISABLE_TOKEN_AUTHORIZATION": "true",
        "TS_DEFAULT_WORKERS_PER_MODEL": "1",
        **extra,
    }
    return env


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def cli(image_dir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scripts.serving", "--run-dir", "run", *args]
    return subprocess.run(command, cwd=image_dir, env=env, capture_output=True, text=True, timeout=60)


def test_the_image_holds_the_serving_side_only(image_dir):
    top = {name.split("/")[0] for name in CONTENTS}
    assert {p.name for p in image_dir.iterdir()} == {*top, "samples", "model_store", "run"}
    assert not {"train", "tests", "requirements.txt"} & {p.name for p in image_dir.iterdir()}
    assert {p.name for p in (image_dir / "scripts").iterdir()} == {"__init__.py", "cli.py", "serving", "setup"}
    assert (image_dir / "model_store" / "mnist.mar").is_file()


def test_restaging_an_unchanged_context_touches_no_file(image_dir, tmp_path):
    """A second `make image` reuses every layer only when the context's files keep their timestamps."""
    before = {p: p.stat().st_mtime_ns for p in image_dir.rglob("*") if p.is_file() and "run" not in p.parts}
    stage_image(untrained_checkpoint(tmp_path / "w.pth"), image_dir)
    after = {p: p.stat().st_mtime_ns for p in image_dir.rglob("*") if p.is_file() and "run" not in p.parts}
    assert after == before


def test_sigterm_under_load_answers_every_request_sent_while_ready(image_dir):
    """Eight clients that stop sending when the pod stops being ready (as a Service's endpoints do)."""
    ports = free_ports(API_NAMES)
    env = entrypoint_env(ports, MNIST_SERVE_WARMUP="3", MNIST_SERVE_DRAIN="1")
    command = [sys.executable, "-m", "scripts.serving", "--run-dir", "run", "run"]
    process = subprocess.Popen(command, cwd=image_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ready = image_dir / "run" / "ready"
    try:
        wait_for(ready, process)
        health = cli(image_dir, env, "health")
        assert health.returncode == 0 and health.stdout.strip() == "healthy"
        java = psutil.Process(process.pid).children(recursive=True)
        url = f"http://127.0.0.1:{ports['inference']}/predictions/mnist"
        body, results, stop = SAMPLE.read_bytes(), [], threading.Event()

        def client() -> None:
            session = requests.Session()
            while not stop.is_set() and ready.exists():
                try:
                    status = session.post(url, data=body, headers={"Content-Type": "image/png"}, timeout=30).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                results.append(status)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=60)
        stop.set()
        output = process.communicate(timeout=120)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "warmed up in" in output and "ready" in output and "draining" in output
    assert len(results) > 50 and set(results) == {200}, {r: results.count(r) for r in set(results)}
    assert not ready.exists() and cli(image_dir, env, "health").returncode == 1
    assert not [p for p in java if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "processes left behind"


def test_health_says_what_is_wrong_without_a_server(image_dir, tmp_path):
    result = cli(image_dir, entrypoint_env(free_ports(API_NAMES)), "--run-dir", str(tmp_path), "health")
    assert result.returncode == 1 and result.stdout.startswith("not ready")
