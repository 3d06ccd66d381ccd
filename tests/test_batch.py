"""handler/batch.py: the per-batch result the handler's stages pass along, and the stages using it."""

import pytest
import torch

from handler.batch import Batch
from model.calibration import Answer
from tests import test_handler
from tests.support import encode
from tests.test_handler import raw, run, stroke_digit

pytestmark = pytest.mark.handler

archive, handler = test_handler.archive, test_handler.handler


def inputs(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 28, 28).clone()


def test_good_requests_are_the_ones_without_an_error():
    batch = Batch(inputs(3), {1: (400, "bad"), 4: (400, "bad")})
    assert batch.size == 5 and batch.good() == [0, 2, 3]


def test_refusing_moves_a_good_request_to_the_errors_and_out_of_the_inputs():
    batch = Batch(inputs(3), {1: (400, "bad")}).refuse({2: (400, "bad target")})
    assert batch.good() == [0, 3] and batch.errors == {1: (400, "bad"), 2: (400, "bad target")}
    assert batch.inputs[:, 0, 0, 0].tolist() == [0.0, 2.0]


def test_the_stages_pass_a_batch_along_and_keep_nothing_on_the_handler(handler):
    png = encode(stroke_digit())
    batch = handler.preprocess([{"body": png}, {"body": b"no picture"}, {"body": png}])
    assert isinstance(batch, Batch) and batch.good() == [0, 2] and batch.errors[1][0] == 400
    answered = handler.inference(batch)
    assert isinstance(answered.answer, Answer) and len(answered.answer.probabilities) == 2
    assert batch.answer is None  # the stages return new batches
    assert not hasattr(handler, "errors")


def test_a_bad_request_does_not_leak_into_the_next_batch(handler, archive):
    png = encode(stroke_digit())
    first = run(handler, archive, [raw(b"no picture"), raw(png)])
    second = run(handler, archive, [raw(png), raw(png)])
    assert [status for status, _ in first] == [400, 200]
    assert [status for status, _ in second] == [200, 200]


def test_a_bare_tensor_is_a_batch_of_good_requests(handler):
    answered = handler.inference(inputs(2))
    assert answered.good() == [0, 1] and len(answered.answer.probabilities) == 2
