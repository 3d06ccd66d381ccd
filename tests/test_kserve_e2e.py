"""KServe's `pytorch` runtime, simulated with a real TorchServe: the store `make kserve-store` writes,
started as the runtime starts it (`torchserve --start --model-store=... --ts-config=...`, envelope
`kserve`), answering KServe's v1 protocol as /predictions/mnist answers the same pictures."""

import base64
import json
from pathlib import Path

import pytest
import requests

from scripts.serving.config import API_NAMES, free_ports, read_properties
from scripts.serving.kserve import kserve_configuration, write_kserve_store
from scripts.serving.paths import MODEL_NAME, SAMPLES
from scripts.serving.process import serve_checkpoint, start
from tests.support import untrained_checkpoint

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PICTURES = sorted(p for p in SAMPLES.glob("*.png") if not p.stem.startswith("blank"))[:8]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("checkpoint") / "w.pth")


@pytest.fixture(scope="module")
def kserve(checkpoint, tmp_path_factory):
    """TorchServe as KServe's runtime starts it, from a store mounted where this test put it."""
    workdir = tmp_path_factory.mktemp("kserve")
    store = workdir / "mnt-models"
    configuration = kserve_configuration(mount=store, workers=1, ports=free_ports(API_NAMES), host="127.0.0.1")
    write_kserve_store(checkpoint, store, configuration)
    server = start(
        store / "config" / "config.properties",
        workdir / "logs",
        cwd=workdir,
        env={"TS_SERVICE_ENVELOPE": "kserve"},
        options=["--model-store", str(store / "model-store")],
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reference(checkpoint, tmp_path_factory):
    """The bundle's own TorchServe for the same checkpoint: /predictions/mnist's answers."""
    server = serve_checkpoint(checkpoint, tmp_path_factory.mktemp("reference"), workers=1)
    headers = {**server.auth("inference"), "Content-Type": "image/png"}
    try:
        yield [
            requests.post(server.predictions_url, data=p.read_bytes(), headers=headers, timeout=60).json()
            for p in PICTURES
        ]
    finally:
        server.stop()


def v1(server, instances: list, timeout: float = 60) -> requests.Response:
    return requests.post(
        f"{server.inference}/v1/models/{MODEL_NAME}:predict", json={"instances": instances}, timeout=timeout
    )


def instance(path: Path) -> dict:
    return {"data": base64.b64encode(path.read_bytes()).decode()}


def same_answer(served: dict, expected: dict) -> bool:
    """The same digit, and probabilities equal to the JSON's rounding (a batch of 8 against batches of 1)."""
    close = all(abs(a - b) <= 2e-6 for a, b in zip(served["probabilities"], expected["probabilities"], strict=True))
    return served["digit"] == expected["digit"] and close


def test_the_store_is_what_the_runtime_mounts(checkpoint, tmp_path):
    store = write_kserve_store(checkpoint, tmp_path / "kserve")
    config = read_properties(store / "config" / "config.properties")
    assert (store / "model-store" / "mnist.mar").is_file()
    assert config["model_store"] == "/mnt/models/model-store" and config["inference_address"].endswith(":8085")
    assert config["enable_envvars_config"] == "true" and config["metrics_mode"] == "prometheus"
    assert config["disable_token_authorization"] == "true" and "load_models" not in config
    snapshot = json.loads(config["model_snapshot"])
    assert snapshot["models"][MODEL_NAME]["1.0"]["batchSize"] == 1


@pytest.mark.parametrize("count", [1, 8])
def test_v1_instances_get_the_answers_of_predictions(kserve, reference, count):
    response = v1(kserve, [instance(p) for p in PICTURES[:count]])
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == count
    assert all(same_answer(served, expected) for served, expected in zip(predictions, reference, strict=False))


def test_a_bad_instance_is_a_400_that_says_which(kserve):
    response = v1(kserve, [instance(PICTURES[0]), {"data": "not base64!"}, {"data": ""}])
    assert response.status_code == 400
    first, second, third = response.json()["predictions"]
    assert "digit" in first
    assert second == {"code": 400, "error": "the image data is not valid base64"}
    assert third == {"code": 400, "error": "the base64 image data is empty"}


@pytest.mark.parametrize("body", [{}, {"instances": []}])
def test_no_instances_is_a_400_that_says_how(kserve, body):
    response = requests.post(f"{kserve.inference}/v1/models/{MODEL_NAME}:predict", json=body, timeout=60)
    assert response.status_code == 400
    assert "instances" in response.json()["predictions"][0]["error"]


def test_the_model_is_ready_without_a_key(kserve):
    assert requests.get(f"{kserve.inference}/v1/models/{MODEL_NAME}", timeout=10).json()["ready"] is True
    assert requests.get(f"{kserve.inference}/ping", timeout=10).json()["status"] == "Healthy"


def test_v1_explain_answers_each_instance_with_its_explanation(kserve):
    url = f"{kserve.inference}/v1/models/{MODEL_NAME}:explain"
    response = requests.post(url, json={"instances": [instance(p) for p in PICTURES[:2]]}, timeout=120)
    assert response.status_code == 200, response.text
    explanations = response.json()["explanations"]
    assert len(explanations) == 2
    for answer in explanations:
        assert answer["target"] == answer["digit"]
        assert len(answer["input"]) == len(answer["attributions"]) == 28
