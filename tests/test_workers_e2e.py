"""Workers follow the machine: by default one per CPU the server may use (and per GPU, where there are GPUs)."""

import os

import pytest
import torch

from scripts.serving.config import configure
from scripts.serving.process import serve_checkpoint
from tests.support import untrained_checkpoint

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def worker_count(tmp_path, **overrides) -> int:
    server = serve_checkpoint(untrained_checkpoint(tmp_path / "w.pth"), tmp_path, **overrides)
    try:
        return len(server.describe()["workers"])
    finally:
        server.stop()


def test_the_shipped_configuration_leaves_the_worker_count_to_the_machine():
    assert configure().workers is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="with GPUs TorchServe starts one worker per GPU")
def test_default_workers_equal_the_usable_cpus(tmp_path):
    assert worker_count(tmp_path) == len(os.sched_getaffinity(0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="with GPUs TorchServe starts one worker per GPU")
def test_a_restricted_affinity_gets_one_worker(tmp_path, one_cpu):
    assert worker_count(tmp_path) == 1


def test_the_worker_count_can_be_set(tmp_path, one_cpu):
    assert worker_count(tmp_path, workers=3) == 3
