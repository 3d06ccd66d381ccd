"""End to end: a real TorchServe on free loopback ports, real HTTP, the real archive and config.

One TorchServe serves the module, started and stopped with the CLI as `make serve` / `make stop` do.
"""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
import torch
from PIL import Image

from scripts.bench.serve.loads import DEFAULT_LOADS
from scripts.bench.serve.schema import field_docs
from scripts.serving.archive import build_archive
from scripts.serving.config import API_NAMES, free_ports, read_properties
from scripts.serving.errors import ServeError
from scripts.serving.paths import ROOT, ZLIB_NG
from scripts.serving.process import Server, serve_checkpoint
from tests.support import (
    PORT_OPTIONS,
    encode,
    mnist_image,
    served_probabilities,
    server_config,
    serving_cli,
    untrained_checkpoint,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# A valid picture for any model, trained or not: a white bar on black, 28x28, as MNIST draws a "1".
GOOD_PNG = encode(Image.fromarray(np.pad(np.full((20, 6), 255, np.uint8), ((4, 4), (11, 11))), mode="L"))


@pytest.fixture(scope="module")
def checkpoint(request, tmp_path_factory):
    """(path, trained): the session's model trained on MNIST with MNIST_DIR, else an untrained one."""
    if os.environ.get("MNIST_DIR"):
        return request.getfixturevalue("mnist_epoch").checkpoint, True
    return untrained_checkpoint(tmp_path_factory.mktemp("checkpoint") / "untrained.pth"), False


@pytest.fixture(scope="module")
def trained(checkpoint):
    if not checkpoint[1]:
        pytest.skip("needs a trained model: set MNIST_DIR to the folder with the four MNIST IDX files")
    return checkpoint[0]


@dataclass(frozen=True)
class Launch:
    server: Server
    ports: list[int]  # given to `start` on its command line, in PORT_OPTIONS order
    config_ports: list[int]  # the config file's, overridden
    output: str  # what `start` printed


@pytest.fixture(scope="module")
def launch(checkpoint, tmp_path_factory):
    """TorchServe with one worker, started by the CLI with every port moved off the config's (as
    `make serve INFERENCE_PORT=...` does); stopped by the CLI at the end, with every process it started."""
    workdir = tmp_path_factory.mktemp("torchserve")
    store = build_archive(checkpoint[0], workdir / "store").parent
    both = free_ports([f"{which} {name}" for which in ("cli", "config") for name in API_NAMES])
    cli_ports = [both[f"cli {name}"] for name in API_NAMES]
    config_ports = [both[f"config {name}"] for name in API_NAMES]
    config = server_config(store, workdir / "config.properties", ports=dict(zip(API_NAMES, config_ports, strict=True)))
    moved = [word for option, port in zip(PORT_OPTIONS, cli_ports, strict=True) for word in (option, str(port))]
    run_dir = str(workdir / "logs")
    started = serving_cli("--run-dir", run_dir, "start", "--config", str(config), *moved, cwd=workdir)
    assert started.returncode == 0, started.stdout + started.stderr
    server = Server.load(run_dir)
    family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    yield Launch(server, cli_ports, config_ports, started.stdout)
    answered = metric(server, "ts_inference_requests_total")
    stopped = serving_cli("--run-dir", run_dir, "stop", cwd=workdir)
    assert stopped.returncode == 0 and f"TorchServe (pid {server.pid}) stopped." in stopped.stdout
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "processes left behind"
    assert not (workdir / "key_file.json").exists()
    # The access log is written in blocks (handler/log4j2.xml): complete once TorchServe has stopped.
    assert answered > 0 and Path(run_dir, "access_log.log").read_text().count("/predictions/") >= answered


@pytest.fixture(scope="module")
def server(launch) -> Server:
    return launch.server


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    """The Makefile's serving helper (`python -m scripts.serving ...`) for this server."""
    return serving_cli("--run-dir", server.state["run_dir"], *args)


def predict(server: Server, data: bytes, content_type: str | None = "image/png", key: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {key or server.key('inference')}"}
    if content_type:
        headers["Content-Type"] = content_type
    return requests.post(f"{server.inference}/predictions/{server.model}", data=data, headers=headers, **kwargs)


def metric(server: Server, name: str) -> float:
    text = requests.get(f"{server.metrics}/metrics", timeout=10).text
    values = [float(v) for v in re.findall(rf"^{name}{{[^}}]*}} ([0-9.eE+-]+)$", text, re.MULTILINE)]
    return sum(values)


def wait_for(read, expected, timeout: float = 15.0):
    """Poll ``read()`` until it returns ``expected`` (or the time is up); return the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def test_start_serves_on_the_ports_given_on_its_command_line(launch):
    server = launch.server
    inference, management, metrics = (f"http://127.0.0.1:{port}" for port in launch.ports[:3])
    assert (server.inference, server.management, server.metrics) == (inference, management, metrics)
    assert f"TorchServe is up (pid {server.pid})" in launch.output
    for endpoint in (f"{inference}/predictions/mnist", f"{management}/models/mnist", f"{metrics}/metrics"):
        assert endpoint in launch.output
    assert all(listening(port) for port in launch.ports)  # gRPC's two as well
    assert not any(listening(port) for port in launch.config_ports)
    assert predict(server, GOOD_PNG, timeout=30).status_code == 200


def test_png_body_gets_exactly_the_served_model_answer(server, checkpoint, mnist):
    """The worker's probabilities are the offline ones of the same served form, to the last digit sent."""
    _, test = mnist
    bodies = [encode(mnist_image(pixels)) for pixels in test.images[:20]]
    for body, probabilities in zip(bodies, served_probabilities(checkpoint[0], bodies), strict=True):
        response = predict(server, body, timeout=30)  # one at a time: a batch of one, as computed
        assert response.status_code == 200
        answer = response.json()
        assert answer["probabilities"] == probabilities
        assert answer["digit"] == int(np.argmax(probabilities)) and answer["confidence"] == max(probabilities)


def test_known_digit_is_classified_right_in_every_encoding(server, trained, mnist):
    _, test = mnist
    # The test set's first digit, a clear 7.
    image, label = mnist_image(test.images[0]), int(test.labels[0])
    data = encode(image)
    key = server.key("inference")
    url = f"{server.inference}/predictions/{server.model}"
    auth = {"Authorization": f"Bearer {key}"}
    responses = {
        "png": predict(server, data, timeout=30),
        "jpeg": predict(server, encode(image.convert("RGB"), "JPEG", quality=95), "image/jpeg", timeout=30),
        "put -T": requests.put(url, data=data, headers=auth, timeout=30),
        "multipart": requests.post(url, files={"data": ("digit.png", data, "image/png")}, headers=auth, timeout=30),
        "json base64": requests.post(url, json={"data": base64.b64encode(data).decode()}, headers=auth, timeout=30),
    }
    for kind, response in responses.items():
        assert response.status_code == 200, f"{kind}: {response.text}"
        assert response.json()["digit"] == label, kind


def test_user_style_picture_is_read(server, trained, mnist):
    _, test = mnist
    # Dark ink on light paper, 10x larger and off-centre, as a JPEG: what a phone would send.
    digit = mnist_image(test.images[0]).resize((280, 280), Image.Resampling.BILINEAR)
    paper = Image.new("L", (640, 480), 235)
    paper.paste(Image.eval(digit, lambda v: 235 - v * 200 // 255), (300, 60))
    response = predict(server, encode(paper.convert("RGB"), "JPEG", quality=85), "image/jpeg", timeout=30)
    assert response.status_code == 200
    assert response.json()["digit"] == int(test.labels[0])


def test_concurrent_requests_are_batched(server):
    batches, images = metric(server, "InferenceBatches"), metric(server, "InferenceImages")
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda _: predict(server, GOOD_PNG, timeout=60), range(96)))
    assert [response.status_code for response in responses] == [200] * 96
    assert all(response.headers["Content-Type"] == "application/json" for response in responses)
    # The frontend reads the workers' metrics from their logs, a moment after the answers.
    new_images = wait_for(lambda: metric(server, "InferenceImages") - images, 96)
    new_batches = metric(server, "InferenceBatches") - batches
    # More images than forward passes: at least one batch held more than one request.
    assert new_batches < new_images


def test_requests_without_a_valid_key_are_rejected(server):
    data = encode(Image.new("L", (28, 28)))
    url = f"{server.inference}/predictions/{server.model}"
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": server.key("inference")}):
        response = requests.post(url, data=data, headers={**headers, "Content-Type": "image/png"}, timeout=10)
        assert response.status_code == 400
        assert response.json()["type"] == "InvalidKeyException"
    management = requests.get(f"{server.management}/models", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert management.status_code == 400
    inference_key_for_management = {"Authorization": f"Bearer {server.key('inference')}"}
    assert (
        requests.get(f"{server.management}/models", headers=inference_key_for_management, timeout=10).status_code == 400
    )


def test_a_renewed_key_replaces_the_old_one(server):
    old = server.key("inference")
    new = server.renew_key("inference")
    assert new != old
    assert predict(server, GOOD_PNG, key=old, timeout=10).status_code == 400
    assert predict(server, GOOD_PNG, key=new, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "body,content_type,words",
    [
        (b"", "image/png", "empty"),
        (b"this is not a picture", "image/png", "not an image"),
        (encode(Image.new("1", (8000, 8000), 0), "PNG"), "image/png", "too many pixels"),  # 64 MP in 4 kB
        (encode(Image.new("RGB", (300, 200), "white"), "JPEG"), "image/jpeg", "no digit found"),
        (b'{"picture": 1}', "application/json", "no base64 image"),
        (b"\x89PNG\r\n\x1a\n", None, "Content-Type"),  # curl --data-binary without -H: form-encoded
    ],
    ids=["empty", "not-an-image", "pixel-bomb", "blank", "json-without-data", "no-content-type"],
)
def test_bad_input_is_a_400_and_the_worker_serves_on(server, body, content_type, words):
    if content_type is None:
        # What curl --data-binary sends when no Content-Type is given.
        response = requests.post(
            f"{server.inference}/predictions/{server.model}",
            data=body,
            headers={
                "Authorization": f"Bearer {server.key('inference')}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            timeout=30,
        )
    else:
        response = predict(server, body, content_type, timeout=30)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert words in response.json()["error"]
    assert predict(server, GOOD_PNG, timeout=30).status_code == 200


def test_bad_requests_among_concurrent_good_ones_fail_alone(server):
    bodies = [GOOD_PNG if i % 3 else b"junk" for i in range(48)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda body: predict(server, body, timeout=60).status_code, bodies))
    assert codes == [200 if i % 3 else 400 for i in range(48)]


def test_scale_workers_to_two_and_back_with_the_cli(server):
    for workers in (2, 1):
        result = cli(server, "scale", str(workers))
        assert result.returncode == 0, result.stderr
        assert f"{workers} worker(s)" in result.stdout
        described = server.describe()["workers"]
        assert len(described) == workers
        assert all(worker["status"] == "READY" for worker in described)


def test_cli_predict_prints_the_served_answer(server, checkpoint):
    sample = ROOT / "samples" / "7_mnist.png"
    result = cli(server, "predict", str(sample))
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["probabilities"] == served_probabilities(checkpoint[0], [sample.read_bytes()])[0]
    if checkpoint[1]:
        assert answer["digit"] == 7


def test_cli_token_prints_every_key_and_they_work(server):
    result = cli(server, "token")
    assert result.returncode == 0, result.stderr
    printed = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert printed == {kind: entry["key"] for kind, entry in server.keys().items()}
    assert set(printed) == {"inference", "management", "API"}
    assert predict(server, GOOD_PNG, key=printed["inference"], timeout=30).status_code == 200


def test_cli_renew_key_replaces_both_keys(server):
    old = {kind: server.key(kind) for kind in ("inference", "management")}
    result = cli(server, "renew-key")
    assert result.returncode == 0, result.stderr
    new = dict(re.findall(r"new (\w+) key: (\S+)", result.stdout))
    assert set(new) == set(old)
    assert all(new[kind] != old[kind] and new[kind] == server.key(kind) for kind in old)
    assert predict(server, GOOD_PNG, key=old["inference"], timeout=30).status_code == 400
    assert predict(server, GOOD_PNG, key=new["inference"], timeout=30).status_code == 200
    models = f"{server.management}/models"
    assert requests.get(models, headers={"Authorization": f"Bearer {old['management']}"}, timeout=10).status_code == 400
    assert requests.get(models, headers={"Authorization": f"Bearer {new['management']}"}, timeout=10).status_code == 200


def test_cli_logs_prints_the_last_lines_of_each_log(server):
    result = cli(server, "logs", "--lines", "3")
    assert result.returncode == 0, result.stderr
    sections = {}
    for section in result.stdout.split("--- last lines of ")[1:]:
        header, *lines = section.rstrip("\n").split("\n")
        sections[Path(header.removesuffix(" ---"))] = lines
    run_dir = Path(server.state["run_dir"])
    assert {run_dir / "model_log.log", run_dir / "ts_log.log"} <= set(sections)
    for path, lines in sections.items():
        assert 1 <= len(lines) <= 3
        assert all(line in path.read_text() for line in lines)


def test_metrics_endpoint_serves_prometheus_text(server):
    assert predict(server, GOOD_PNG, timeout=30).status_code == 200
    assert wait_for(lambda: metric(server, "InferenceImages") > 0, True)
    response = requests.get(f"{server.metrics}/metrics", timeout=10)
    assert response.status_code == 200
    assert "# TYPE ts_inference_requests_total counter" in response.text
    assert "# TYPE InferenceImages counter" in response.text and "# TYPE InferenceBatches counter" in response.text
    assert metric(server, "ts_inference_requests_total") > 0


def test_model_log_has_the_handler_lines_but_not_a_line_per_batch(server):
    for _ in range(4):
        assert predict(server, GOOD_PNG, timeout=30).status_code == 200
    log = Path(server.state["run_dir"], "model_log.log")
    assert wait_for(lambda: "MnistHandler ready" in log.read_text(), True)
    assert "Backend received inference" not in log.read_text()


def test_workers_inflate_pngs_with_zlib_ng_when_it_is_built(server):
    if not (ZLIB_NG / "libz.so.1").exists():
        pytest.skip("zlib-ng is not built: `make install` builds it when cmake and a C compiler are there")
    log = Path(server.state["run_dir"], "model_log.log")
    assert wait_for(lambda: "MnistHandler ready" in log.read_text(), True)
    ready = [line for line in log.read_text().splitlines() if "MnistHandler ready" in line]
    assert ready and all("zlib-ng" in line for line in ready), ready
    # Pillow's decoder shares the one libz.so.1 of the process: the worker must have mapped ours.
    family = psutil.Process(server.pid).children(recursive=True)
    workers = [p for p in family if "model_service_worker" in " ".join(p.cmdline())]
    assert workers
    for worker in workers:
        libraries = {m.path for m in worker.memory_maps() if "libz.so" in m.path}
        # Mapped paths are real paths; the venv may be a symlink.
        assert libraries and all(path.startswith(str(ZLIB_NG.resolve())) for path in libraries), libraries


def test_starting_again_while_running_changes_nothing(server):
    result = cli(server, "start")
    assert result.returncode == 0
    assert "already running" in result.stdout
    assert Server.load(server.state["run_dir"]).pid == server.pid
    status = cli(server, "status")
    assert status.returncode == 0
    assert "READY" in status.stdout and f"{server.inference}/predictions/{server.model}" in status.stdout


def test_models_cannot_be_registered_over_the_api(server):
    headers = {"Authorization": f"Bearer {server.key('management')}"}
    for url in ("https://example.com/evil.mar", "file:///tmp/evil.mar", "mnist.mar"):
        response = requests.post(f"{server.management}/models", params={"url": url}, headers=headers, timeout=10)
        assert response.status_code == 405, response.text
    assert requests.delete(f"{server.management}/models/{server.model}", headers=headers, timeout=10).status_code == 405
    assert [
        m["modelName"]
        for m in requests.get(f"{server.management}/models", headers=headers, timeout=10).json()["models"]
    ] == [server.model]


def test_workers_that_never_get_ready_stop_the_start_with_the_log(tmp_path):
    broken = tmp_path / "broken.pth"
    torch.save({"not": torch.zeros(1)}, broken)  # the workers fail to load it, over and over
    with pytest.raises(ServeError) as error:
        serve_checkpoint(broken, tmp_path, timeout=20)
    assert "not READY after 20 s" in str(error.value)
    assert "last lines of" in str(error.value) and "load_state_dict" in str(error.value)
    assert not torchserve_processes(tmp_path), "processes left behind"


def torchserve_processes(folder: Path) -> list[psutil.Process]:
    """TorchServe frontends and workers logging into ``folder`` (other servers on the machine are not ours)."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        command = " ".join(process.info["cmdline"] or [])
        logs_here = (process.info["environ"] or {}).get("LOG_LOCATION", "").startswith(str(folder))
        if logs_here and ("org.pytorch.serve.ModelServer" in command or "model_service_worker" in command):
            found.append(process)
    return found


def test_a_body_over_the_request_size_limit_is_refused(server):
    limit = int(read_properties(ROOT / "config.properties")["max_request_size"])
    assert predict(server, b"\0" * (limit + 1), timeout=30).status_code == 413  # Request Entity Too Large
    assert predict(server, GOOD_PNG, timeout=30).status_code == 200


def test_curl_without_a_content_type_never_reaches_the_model(server):
    """curl --data-binary without -H: TorchServe parses the picture as a form (see README)."""
    form = {"Authorization": f"Bearer {server.key('inference')}", "Content-Type": "application/x-www-form-urlencoded"}
    url = f"{server.inference}/predictions/{server.model}"
    parses = requests.post(url, data=b"\x89PNG\r\n\x1a\n\0\0", headers=form, timeout=30)
    assert parses.status_code == 400 and "-H 'Content-Type: image/png'" in parses.json()["error"]
    # A form value with a '%' that is no URL escape: the frontend's decoder fails before the handler runs.
    fails = requests.post(url, data=b"\x89PNG=%\xff\xfe", headers=form, timeout=30)
    assert fails.status_code == 500 and fails.json()["type"] == "ErrorDataDecoderException"
    assert predict(server, GOOD_PNG, timeout=30).status_code == 200


def test_bench_serve_quick_reports_every_field_and_no_errors(server, checkpoint, tmp_path):
    """`scripts.bench.serve --quick` against this server: wrk, the ceiling, the JSON, the plot."""
    if shutil.which("wrk") is None:
        pytest.skip("needs the load generator wrk: apt-get install wrk (.ci/run installs it)")
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "scripts.bench.serve", "--quick", "--attach", server.state["run_dir"]]
    command += ["--checkpoint", str(checkpoint[0]), "--out", str(out)]
    command += ["--plot", str(tmp_path / "bench.png"), "--markdown", str(tmp_path / "bench.md")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert set(report["ceiling"]["images_per_s"]) >= {"1", "8", "32"}
    assert all(value > 0 for value in report["ceiling"]["images_per_s"].values())
    assert report["single_image_ms"]["handler"] > 0
    if (ZLIB_NG / "libz.so.1").exists():  # the in-process figures inflate PNGs as the workers do
        assert "zlib-ng" in report["machine"]["zlib"]
    assert sorted(point["load"] for point in report["points"]) == sorted(DEFAULT_LOADS)  # one point per load
    for point in report["points"]:
        assert list(point) == list(field_docs()), "a point holds exactly the fields scripts.bench.serve.schema declares"
        assert None not in (point["jit_cpu_ms"], point["server_ms"], point["queue_ms"], point["mean_batch"])
        assert point["requests"] >= 300 and point["non_200"] == 0 and point["statuses"] == {"200": point["requests"]}
        assert point["rps"] > 0 and 0 < point["p50_ms"] <= point["p90_ms"] <= point["p99_ms"]
        assert point["workers"] == len(server.describe()["workers"])
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert "| attached |" in (tmp_path / "bench.md").read_text()
