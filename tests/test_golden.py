"""The samples' model inputs have not moved: the preprocessing's outputs, held to tests/golden/."""

import numpy as np
import pytest

from tests.golden import REGENERATE, TOLERANCE, read_golden, sample_inputs

pytestmark = pytest.mark.unit

GOLDEN = read_golden()


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return sample_inputs()


def test_every_sample_but_the_blank_one_has_a_golden_input(inputs):
    assert sorted(inputs) == sorted(GOLDEN), f"samples/ changed: {REGENERATE}"
    assert "blank.png" not in GOLDEN and len(GOLDEN) == 10


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_sample_becomes_its_golden_input(inputs, name):
    actual, expected = inputs[name], GOLDEN[name]
    assert actual.shape == expected.shape == (1, 28, 28) and actual.dtype == np.float32
    gap = float(np.abs(actual - expected).max())
    assert gap <= TOLERANCE, f"{name} moved by up to {gap:.3g}: if that is intended, {REGENERATE}"
