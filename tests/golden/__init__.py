"""Golden outputs of ``handler.preprocess.to_model_input`` for the pictures in ``samples/``.

``tests/test_golden.py`` holds every change to the preprocessing to them. When a change is meant
to change the outputs, check what moved, then regenerate and commit the file with the change:

    .venv/bin/python -m tests.golden            # how far each sample is from its golden input
    .venv/bin/python -m tests.golden --write    # rewrite tests/golden/to_model_input.npz
"""

from pathlib import Path

import numpy as np

from handler.decode import decode_image
from handler.preprocess import PreprocessError, to_model_input

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).resolve().parent / "to_model_input.npz"
# Per value, on the model's input scale (about -0.4 to 2.8): float32 rounding, not a change.
TOLERANCE = 1e-5
REGENERATE = "python -m tests.golden --write"


def sample_inputs() -> dict[str, np.ndarray]:
    """{file name: (1, 28, 28) float32 input} for every sample, decoded as the server decodes it.

    The blank picture, which the preprocessing refuses, is left out.
    """
    inputs = {}
    for path in sorted(SAMPLES.iterdir()):
        try:
            inputs[path.name] = to_model_input(decode_image(path.read_bytes())).numpy()
        except PreprocessError:
            continue
    return inputs


def read_golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as golden:
        return {name: golden[name] for name in golden.files}


def write_golden() -> Path:
    np.savez_compressed(GOLDEN, **sample_inputs())
    return GOLDEN
