"""The not-a-digit flag and the tempered confidence in the handler's answers, in the unpacked archive, no server."""

import base64
import json
import logging
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from ts.torch_handler.request_envelope.kserve import KServeEnvelope

from handler.mnist_handler import NOT_A_DIGIT_NOTE, MnistHandler
from handler.preprocess import to_model_input
from model.calibration import Calibration, answer, calibration_path, load_calibration, save_calibration
from model.inference import load_for_inference
from scripts.bench.serve.ceiling import in_process_handler
from scripts.serving.kserve import write_kserve_store
from tests.support import encode, unpacked_archive, untrained_checkpoint
from tests.test_calibration import bar, energy_check, square
from tests.test_handler import make_context, raw

pytestmark = [pytest.mark.handler, pytest.mark.timeout(300)]


def picture(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray((pixels * 255).astype(np.uint8), mode="L")


PICTURES = [picture(bar(2)), picture(square())]


@pytest.fixture(scope="module")
def checked_handler(tmp_path_factory):
    """(handler, model dir, checkpoint, flags): a hand-made check flags the picture of the higher energy."""
    workdir = tmp_path_factory.mktemp("checked")
    checkpoint = untrained_checkpoint(workdir / "weights.pth")
    with torch.inference_mode():
        logits = load_for_inference(checkpoint)(torch.stack([to_model_input(p) for p in PICTURES]))
    energies = torch.logsumexp(logits, 1)
    threshold = float(energies.mean())
    save_calibration(calibration_path(checkpoint), Calibration(1.5, energy_check(threshold)), {})
    model_dir = unpacked_archive(checkpoint, workdir)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(model_dir))
        handler = MnistHandler()
        handler.initialize(make_context(model_dir, []))
    torch.set_num_threads(threads)
    return handler, model_dir, checkpoint, (energies <= threshold).tolist()


def test_the_archive_carries_the_calibration(checked_handler):
    handler, model_dir, checkpoint, _ = checked_handler
    assert (model_dir / "calibration.pt").read_bytes() == calibration_path(checkpoint).read_bytes()
    assert handler.calibration is not None and handler.calibration.temperature == pytest.approx(1.5)


def test_handler_answers_carry_the_flag_and_the_tempered_confidence(checked_handler):
    handler, model_dir, checkpoint, expected_flags = checked_handler
    assert sorted(expected_flags) == [False, True]
    requests_ = [raw(encode(p)) for p in PICTURES]
    context = make_context(model_dir, [headers for _, headers in requests_])
    answers = [json.loads(a) for a in handler.handle([row for row, _ in requests_], context)]
    assert [a["is_digit"] for a in answers] == expected_flags
    for a in answers:
        assert a.get("note") == (None if a["is_digit"] else NOT_A_DIGIT_NOTE)
    # The confidence is the tempered softmax that model.calibration.answer computes offline.
    model = load_for_inference(checkpoint)
    calibration = load_calibration(calibration_path(checkpoint))
    with torch.inference_mode():
        offline = answer(model, torch.stack([to_model_input(p) for p in PICTURES]), calibration)
    for served, expected in zip(answers, offline.probabilities.tolist(), strict=True):
        assert served["probabilities"] == pytest.approx(expected, abs=1e-5)
        assert served["confidence"] == pytest.approx(max(expected), abs=1e-5)


def test_flagged_pictures_are_counted_in_metrics(checked_handler, caplog):
    handler, model_dir, _, expected_flags = checked_handler
    requests_ = [raw(encode(p)) for p in PICTURES] + [raw(b"")]
    context = make_context(model_dir, [headers for _, headers in requests_])
    with caplog.at_level(logging.INFO, logger="ts.metrics.caching_metric"):
        handler.handle([row for row, _ in requests_], context)
    flagged = expected_flags.count(False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[METRICS]NotADigitImages")]
    assert any(line.startswith(f"[METRICS]NotADigitImages.Count:{flagged}|#ModelName:mnist") for line in lines)


def test_kserve_instances_carry_the_flag(checked_handler):
    handler, model_dir, _, expected_flags = checked_handler
    body = {"instances": [{"data": base64.b64encode(encode(p)).decode()} for p in PICTURES]}
    context = make_context(model_dir, [{"body": {"content-type": "application/json"}}])
    [response] = KServeEnvelope(handler.handle).handle([{"body": body}], context)
    predictions = [json.loads(p) if isinstance(p, str) else p for p in response["predictions"]]
    assert [p["is_digit"] for p in predictions] == expected_flags
    assert [p.get("note") for p in predictions] == [None if f else NOT_A_DIGIT_NOTE for f in expected_flags]


def test_explanations_carry_the_flag_too(checked_handler):
    handler, model_dir, _, expected_flags = checked_handler
    requests_ = [raw(encode(p)) for p in PICTURES]
    context = make_context(model_dir, [{**headers, "explain": "True"} for _, headers in requests_])
    answers = [json.loads(a) for a in handler.handle([row for row, _ in requests_], context)]
    assert [a["is_digit"] for a in answers] == expected_flags
    assert all(np.array(a["attributions"]).shape == (28, 28) for a in answers)


def test_kserve_store_and_in_process_benchmark_handler_load_the_calibration(checked_handler, tmp_path):
    _, _, checkpoint, _ = checked_handler
    store = write_kserve_store(checkpoint, tmp_path / "kserve")
    with zipfile.ZipFile(store / "model-store" / "mnist.mar") as archive:
        assert "calibration.pt" in archive.namelist()
    assert in_process_handler(checkpoint).calibration is not None


def test_an_uncalibrated_checkpoint_ships_and_loads_no_calibration(tmp_path):
    checkpoint = untrained_checkpoint(tmp_path / "bare.pth")
    model_dir = unpacked_archive(checkpoint, tmp_path)
    assert not (model_dir / "calibration.pt").exists()
    assert in_process_handler(checkpoint).calibration is None
