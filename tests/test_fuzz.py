"""Hard inputs never hurt a worker: fuzzed files only ever give the handler's client errors."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from handler.decode import RequestError, request_image
from handler.preprocess import PreprocessError, to_model_input
from scripts.serving.paths import ROOT

pytestmark = pytest.mark.unit

# Bounds per case: a hang or a runaway allocation, not a speed goal (typical cases take milliseconds).
CASE_SECONDS = 2.0
CASE_MEMORY_MB = 512


@pytest.mark.timeout(300)
def test_fuzzed_files_only_raise_client_errors():
    """4,450 seeded cases: mutated PNG/JPEG/GIF/WebP/BMP/TIFF files and random valid pictures."""
    command = [sys.executable, "-m", "tests.fuzz", "--seed", "0", "--memory-mb", str(2 * CASE_MEMORY_MB)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["cases"] == 23 * 150 + 1000
    assert report["findings"] == []
    assert report["client_errors"] > 0 and report["answered"] > 0  # both paths were exercised
    assert report["max_seconds"] < CASE_SECONDS
    assert report["max_rss_growth_mb"] < CASE_MEMORY_MB


def tiff_with_fractional_strip_offset() -> bytes:
    """A valid TIFF whose StripOffsets tag is retyped RATIONAL (found by the fuzz: TypeError in Pillow)."""
    buffer = io.BytesIO()
    Image.new("L", (60, 48), 200).save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    assert data[:2] == b"II"
    ifd = int.from_bytes(data[4:8], "little")
    for entry in range(ifd + 2, ifd + 2 + 12 * int.from_bytes(data[ifd : ifd + 2], "little"), 12):
        if int.from_bytes(data[entry : entry + 2], "little") == 273:  # StripOffsets
            data[entry + 2 : entry + 4] = (5).to_bytes(2, "little")  # type RATIONAL
    return bytes(data)


def test_corrupt_tiff_found_by_the_fuzz_is_a_client_error():
    with pytest.raises(RequestError, match="cannot be decoded"):
        request_image({"body": tiff_with_fractional_strip_offset()})


@pytest.mark.parametrize("pixels", [[[255, 255, 255], [0, 255, 0]], [[0, 0, 0], [255, 0, 255]]], ids=str)
def test_tiny_pictures_found_by_the_fuzz_give_an_input_or_a_client_error(pixels):
    """Eroding thick strokes once wiped out these few-pixel pictures entirely (ZeroDivisionError)."""
    try:
        x = to_model_input(Image.fromarray(np.array(pixels, dtype=np.uint8)))
    except PreprocessError as error:
        assert str(error)
    else:
        assert x.shape == (1, 28, 28) and bool(x.isfinite().all())
