"""Real photographs that are not digits never crash the preprocessing: a model input or a client error."""

import pytest

from handler.decode import decode_image
from handler.ink import PreprocessError
from handler.preprocess import to_model_input
from scripts.accuracy import photos

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(
        not photos.available(), reason="scikit-image's photographs are not installed (requirements.txt)"
    ),
]


def test_every_held_out_photograph_is_answered_or_refused_with_a_reason():
    outcomes = {"input": 0, "refused": 0}
    for name, data in photos.photo_files():
        try:
            tensor = to_model_input(decode_image(data))
        except PreprocessError as err:
            assert str(err), name
            outcomes["refused"] += 1
        else:
            assert tuple(tensor.shape[-2:]) == (28, 28), name
            assert bool(tensor.isfinite().all()), name
            outcomes["input"] += 1
    assert outcomes["input"] > outcomes["refused"] > 0
