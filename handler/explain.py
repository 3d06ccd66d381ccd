"""Explanations for ``POST /explanations/mnist``: the 28x28 input a picture became, and why the model answered.

Each explanation is a prediction (``digit``, ``confidence``, ``probabilities``, and ``is_digit`` with a
calibration) plus ``input``, the model's 28x28 input as 0-1 intensities (ink bright, as MNIST),
``target``, the digit explained (the predicted one unless the request names another), and
``attributions``, Integrated Gradients of that digit's logit with respect to each input pixel, from a
blank (black) picture to this one.

TorchServe marks each request of a batch with an ``explain`` header, but only looks at the first;
a batch may mix predictions and explanations, so every request gets what it asked for here.
captum is imported on the first explanation: the prediction path never loads it.
"""

from __future__ import annotations

import functools
import logging

import torch
from ts.handler_utils.timer import timed

from handler.batch import Batch
from handler.decode import RequestError
from handler.preprocess import normalize
from model import MNIST_MEAN, MNIST_STD

logger = logging.getLogger(__name__)

# Integration steps (captum's Gauss-Legendre rule): the time per explanation grows with them; the map
# they give against a many-step one is measured in docs/demo.md.
STEPS = 32
TARGET_FIELD = "target"
# Explanations are rounded: a few kB of JSON each (TorchServe caps a response at max_response_size).
INPUT_DECIMALS = 3
ATTRIBUTION_DECIMALS = 5


def requested(context, index: int) -> bool:
    """True when request ``index`` of the batch came through an explanations route."""
    processors = getattr(context, "request_processor", None) or []
    if not processors:
        return False
    # KServe's envelope hands over the instances of one request: they share its headers.
    processor = processors[index] if index < len(processors) else processors[0]
    return processor.get_request_property("explain") == "True"


def any_requested(context) -> bool:
    """True when any request of the batch asked for an explanation."""
    processors = getattr(context, "request_processor", None) or []
    return any(requested(context, index) for index in range(len(processors)))


def target_of(row) -> int | None:
    """The digit a request asks to explain (form field, JSON or KServe instance key), None for the prediction."""
    value = None
    if isinstance(row, dict):
        value = row.get(TARGET_FIELD)
        body = row.get("body")
        if value is None and isinstance(body, dict):
            value = body.get(TARGET_FIELD)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip() in tuple("0123456789"):
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return value
    raise RequestError(f"target must be a digit from 0 to 9 (got {str(value)[:20]!r})")


def model_view(inputs: torch.Tensor) -> list:
    """(n, 1, 28, 28) model inputs back to 0-1 intensities, ink bright: one 28x28 list per picture."""
    pixels = (inputs[:, 0] * MNIST_STD + MNIST_MEAN).clamp(0.0, 1.0)
    return [[[round(v, INPUT_DECIMALS) for v in row] for row in picture] for picture in pixels.tolist()]


@functools.cache
def captum_integrated_gradients():
    """captum's IntegratedGradients, imported on the first explanation: predictions never pay for captum."""
    import captum
    from captum.attr import IntegratedGradients

    logger.info("captum %s imported for explanations", captum.__version__)
    return IntegratedGradients


def integrated_gradients(
    model: torch.nn.Module, inputs: torch.Tensor, targets: list[int], steps: int = STEPS
) -> torch.Tensor:
    """Integrated Gradients of each target's logit from a blank picture, (n, 1, 28, 28)."""
    # The model's blank picture is black (intensity 0), which is not 0 after normalisation.
    baselines = normalize(torch.zeros_like(inputs))
    with torch.enable_grad():
        attributions = captum_integrated_gradients()(model).attribute(
            inputs.detach().clone(), baselines=baselines, target=targets, n_steps=steps
        )
    return attributions.detach()


class Explanations:
    """The explanations route, mixed into a handler that has ``preprocess``, ``inference``, ``answers``, ``respond``.

    It replaces BaseHandler's ``_is_explain`` (which reads the first request only) and ``explain_handle``.
    """

    def _is_explain(self) -> bool:
        """True when any request of the batch came through an explanations route."""
        return any_requested(self.context)

    @timed
    def explain_handle(self, data_preprocess: Batch, raw_data: list) -> list:
        """Explanations for the requests that asked for one, predictions for the others.

        ``data_preprocess`` is ``self.preprocess(raw_data)``. A bad ``target`` joins the batch's
        errors as a 400 before the forward pass.
        """
        refused = {}
        targets = {}
        for index in data_preprocess.good():
            if requested(self.context, index):
                try:
                    targets[index] = target_of(raw_data[index])
                except RequestError as error:
                    refused[index] = (400, str(error))
        batch = self.inference(data_preprocess.refuse(refused))
        answers = self.answers(batch)
        explained = [(row, index) for row, index in enumerate(batch.good()) if index in targets]
        if not explained:
            return self.respond(answers)
        chosen = [targets[index] if targets[index] is not None else answers[index]["digit"] for _, index in explained]
        inputs = batch.inputs[[row for row, _ in explained]]
        maps = integrated_gradients(self.model, inputs, chosen)
        views = model_view(inputs)
        for k, (_, index) in enumerate(explained):
            answer = answers[index]
            answer["target"] = chosen[k]
            answer["input"] = views[k]
            answer["attributions"] = [[round(v, ATTRIBUTION_DECIMALS) for v in row] for row in maps[k, 0].tolist()]
        return self.respond(answers)
