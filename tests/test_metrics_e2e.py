"""The latency histograms on TorchServe's metrics API (handler/metrics.yaml), through a real TorchServe.

Queue wait (frontend), the handler's whole batch and TorchServe's call of it, and the handler's
stages (``@timed``, switched on by ``handler: profile: true`` in the archive's model config).
"""

import math

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts.serving.archive import build_archive
from scripts.serving.config import configure
from scripts.serving.process import serve_store
from tests.support import untrained_checkpoint
from tests.test_serve_e2e import GOOD_PNG

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

STAGES = ("ts_handler_preprocess", "ts_handler_inference", "ts_handler_postprocess")
PER_BATCH = ("HandlerTime", "PredictionTime", *STAGES)
# The Prometheus Java client's default buckets, which TorchServe's frontend uses for every histogram.
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, math.inf]


def scrape(server) -> dict:
    """{family name: family} from the server's /metrics."""
    text = requests.get(f"{server.metrics}/metrics", timeout=10).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def total(families: dict, family: str, suffix: str) -> float:
    return sum(s.value for s in families[family].samples if s.name == family + suffix) if family in families else 0.0


def send(server, good: int, bad: int) -> None:
    url, auth = f"{server.inference}/predictions/{server.model}", server.auth("inference")
    for body, count, status in ((GOOD_PNG, good, 200), (b"not a picture", bad, 400)):
        for _ in range(count):
            assert requests.post(url, data=body, headers=auth, timeout=30).status_code == status


def serve(tmp_path_factory, profile: bool):
    workdir = tmp_path_factory.mktemp(f"metrics-profile-{profile}")
    checkpoint = untrained_checkpoint(workdir / "untrained.pth")
    model = {**configure().model, "handler": {"profile": profile}}
    build_archive(checkpoint, workdir / "store", model)
    return serve_store(workdir / "store", workdir, workers=1)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    server = serve(tmp_path_factory, profile=True)
    try:
        yield server
    finally:
        server.stop()


def test_the_shipped_model_config_switches_the_stage_timings_on():
    assert configure().model["handler"] == {"profile": True}


def test_queue_wait_handler_and_stage_histograms_count_what_was_sent(profiled):
    before = scrape(profiled)
    send(profiled, good=12, bad=5)
    after = scrape(profiled)
    assert total(after, "QueueTime", "_count") - total(before, "QueueTime", "_count") == 17
    batches = total(after, "HandlerTime", "_count") - total(before, "HandlerTime", "_count")
    # One request at a time: each is its own batch, so every per-batch histogram saw all of them.
    assert batches == 17
    for family in PER_BATCH:
        assert after[family].type == "histogram", family
        assert total(after, family, "_count") - total(before, family, "_count") == batches, family
        assert total(after, family, "_sum") > total(before, family, "_sum"), family
        [labels] = {tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) for s in after[family].samples}
        assert dict(labels)["ModelName"] == profiled.model
        bounds = sorted(float(s.labels["le"]) for s in after[family].samples if s.name.endswith("_bucket"))
        assert bounds == BUCKETS, family


def test_stage_times_add_up_to_at_most_the_handler_time(profiled):
    families = scrape(profiled)
    stages = sum(total(families, family, "_sum") for family in STAGES)
    assert 0 < stages <= total(families, "HandlerTime", "_sum") * 1.05 + 1


def test_without_profile_the_stages_report_nothing(tmp_path_factory):
    server = serve(tmp_path_factory, profile=False)
    try:
        send(server, good=3, bad=1)
        families = scrape(server)
        assert total(families, "HandlerTime", "_count") >= 4
        assert all(total(families, family, "_count") == 0 for family in STAGES)
    finally:
        server.stop()
