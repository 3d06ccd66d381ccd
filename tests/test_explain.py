"""Explanations (handler/explain.py) through MnistHandler with TorchServe's own Context, without a server."""

import base64
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from ts.torch_handler.request_envelope.kserve import KServeEnvelope

from handler.preprocess import to_model_input
from model import normalize
from scripts.serving.paths import ROOT
from tests import test_handler
from tests.support import encode
from tests.test_handler import make_context, raw, stroke_digit

pytestmark = [pytest.mark.handler, pytest.mark.timeout(300)]

# The handler tests' fixtures: the real archive unpacked, an untrained model, the handler running in it.
archive, handler, model = test_handler.archive, test_handler.handler, test_handler.model

PNG = encode(stroke_digit())


def explain_run(handler, archive, requests: list[tuple[dict, dict]], explain: list[bool]):
    """One batch as TorchServe hands it over, each request marked as its route marks it."""
    headers = [{**h, "explain": "True" if e else "False"} for (_, h), e in zip(requests, explain, strict=True)]
    context = make_context(archive[0], headers)
    answers = handler.handle([row for row, _ in requests], context)
    assert len(answers) == len(requests)
    return [(context.get_response_status(i)[0], json.loads(answer)) for i, answer in enumerate(answers)]


def form(data: bytes, target) -> tuple[dict, dict]:
    """A multipart upload (-F data=@digit.png -F target=...): text fields arrive as bytes."""
    return {"data": data, "target": target}, {"data": {"content-type": "image/png"}, "target": {"content-type": None}}


def logits(model, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x.unsqueeze(0))[0]


def test_an_explanation_holds_the_prediction_the_model_input_and_a_map(handler, archive, model):
    [(status, prediction)] = explain_run(handler, archive, [raw(PNG)], [False])
    [(status, answer)] = explain_run(handler, archive, [raw(PNG)], [True])
    assert status == 200
    assert set(answer) == {"digit", "confidence", "probabilities", "target", "input", "attributions"}
    assert {k: answer[k] for k in prediction} == prediction
    assert answer["target"] == answer["digit"]
    view = np.array(answer["input"])
    assert view.shape == (28, 28) and view.min() >= 0.0 and view.max() <= 1.0
    expected = to_model_input(stroke_digit())[0].numpy() * 0.3081 + 0.1307
    np.testing.assert_allclose(view, expected, atol=6e-4)
    attributions = np.array(answer["attributions"])
    assert attributions.shape == (28, 28) and np.abs(attributions).max() > 0


def test_attributions_add_up_to_the_logit_change_from_a_blank_picture(handler, archive, model):
    for target in range(0, 10, 3):
        [(status, answer)] = explain_run(handler, archive, [form(PNG, str(target).encode())], [True])
        assert status == 200 and answer["target"] == target
        x = to_model_input(stroke_digit())
        change = float(logits(model, x)[target] - logits(model, normalize(torch.zeros_like(x)))[target])
        total = float(np.sum(answer["attributions"]))
        assert total == pytest.approx(change, rel=0.05, abs=0.05), (target, total, change)


def test_the_target_comes_from_a_form_field_a_json_body_or_a_kserve_instance(handler, archive):
    b64 = base64.b64encode(PNG).decode()
    requests = [
        form(PNG, b"4"),
        ({"body": {"data": b64, "target": 6}}, {"body": {"content-type": "application/json"}}),
        ({"data": b64, "target": "8"}, {}),
        form(PNG, b""),  # an empty field: the predicted digit
    ]
    results = explain_run(handler, archive, requests, [True] * 4)
    assert [status for status, _ in results] == [200] * 4
    assert [answer["target"] for _, answer in results] == [4, 6, 8, results[3][1]["digit"]]
    maps = [np.array(answer["attributions"]) for _, answer in results]
    assert not np.allclose(maps[0], maps[1])


@pytest.mark.parametrize("target", [b"12", b"x", b"-1", "3.5", 10, True, 2.0])
def test_a_bad_target_is_a_400_with_a_message(handler, archive, target):
    if isinstance(target, bytes):
        request = form(PNG, target)
    else:
        request = ({"body": {"data": base64.b64encode(PNG).decode(), "target": target}}, {})
    [(status, answer)] = explain_run(handler, archive, [request], [True])
    assert status == 400
    assert answer["code"] == 400 and answer["error"].startswith("target must be a digit from 0 to 9")


def test_a_batch_mixing_predictions_explanations_and_bad_requests_answers_each_as_asked(handler, archive, model):
    # TorchServe decides on the first request alone: a prediction comes first here.
    requests = [raw(PNG), form(PNG, b"2"), raw(b""), form(PNG, b"11"), raw(PNG), form(PNG, b"")]
    explain = [False, True, True, True, False, True]
    results = explain_run(handler, archive, requests, explain)
    assert [status for status, _ in results] == [200, 200, 400, 400, 200, 200]
    prediction = results[0][1]
    assert set(prediction) == {"digit", "confidence", "probabilities"} and results[4][1] == prediction
    assert "empty" in results[2][1]["error"] and "target" in results[3][1]["error"]
    assert results[1][1]["target"] == 2 and results[5][1]["target"] == prediction["digit"]
    for index in (1, 5):
        assert results[index][1]["probabilities"] == prediction["probabilities"]
    # The same request alone gives the same map: the batch does not mix up rows.
    [(_, alone)] = explain_run(handler, archive, [form(PNG, b"2")], [True])
    np.testing.assert_allclose(alone["attributions"], results[1][1]["attributions"], atol=2e-5)


def test_a_batch_of_only_bad_explanations_needs_no_forward_pass(handler, archive):
    results = explain_run(handler, archive, [raw(b""), form(PNG, b"nine")], [True, True])
    assert [status for status, _ in results] == [400, 400]


def test_kserve_explain_route_answers_through_the_envelope(handler, archive):
    # KServe v1 `:explain`: one request, {"instances": [...]}, marked explain like /explanations.
    body = {"instances": [{"data": base64.b64encode(PNG).decode(), "target": 5}]}
    context = make_context(archive[0], [{"body": {"content-type": "application/json"}, "explain": "True"}])
    [response] = KServeEnvelope(handler.handle).handle([{"body": body}], context)
    [answer] = response["explanations"]
    answer = json.loads(answer) if isinstance(answer, str) else answer
    assert answer["target"] == 5 and np.array(answer["attributions"]).shape == (28, 28)


def test_predictions_never_import_captum(archive):
    # A fresh interpreter, as a worker: the handler serves predictions, then one explanation.
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from handler.mnist_handler import MnistHandler
        from tests.test_handler import make_context
        from tests.support import encode
        from tests.test_explain import PNG
        from pathlib import Path

        model_dir = Path(sys.argv[1])
        handler = MnistHandler()
        handler.initialize(make_context(model_dir, []))
        seen = {}
        for explain in ("False", "True"):
            context = make_context(model_dir, [{"body": {"content-type": "image/png"}, "explain": explain}] * 2)
            answers = handler.handle([{"body": PNG}] * 2, context)
            seen[explain] = ["captum" in sys.modules, sorted(json.loads(answers[0]))]
        print(json.dumps(seen))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(archive[0])], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["False"] == [False, ["confidence", "digit", "probabilities"]]
    assert seen["True"][0] is True and "attributions" in seen["True"][1]


def test_model_view_is_the_input_in_ink_bright_intensities():
    from handler.explain import model_view

    pixels = torch.rand(2, 1, 28, 28)
    view = np.array(model_view(normalize(pixels)))
    assert view.shape == (2, 28, 28)
    np.testing.assert_allclose(view, pixels[:, 0].numpy(), atol=6e-4)
