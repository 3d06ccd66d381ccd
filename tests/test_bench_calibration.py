"""scripts.bench.calibration: the handler timed with and without the calibration, and its one-line error."""

import json

import pytest

from model.calibration import Calibration, calibration_path, save_calibration
from scripts.bench import calibration as bench_check
from tests.support import untrained_checkpoint
from tests.test_calibration import energy_check

pytestmark = pytest.mark.unit


def test_times_the_handler_with_and_without_the_calibration(tmp_path, capsys):
    checkpoint = untrained_checkpoint(tmp_path / "weights.pth")
    save_calibration(calibration_path(checkpoint), Calibration(1.5, energy_check(0.0)), {})
    out = tmp_path / "reports" / "bench_check.json"
    argv = ["--checkpoint", str(checkpoint), "--rounds", "1", "--repeats", "2", "--seconds", "0.3"]
    assert bench_check.main([*argv, "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report == json.loads(capsys.readouterr().out)  # printed and written alike
    assert "blank.png" not in report["pictures"] and len(report["pictures"]) >= 5
    for name in ("without", "with"):
        assert report["ms"][name]["handler"] > 0 and report["batch_8"][name]["cpu_ms_per_image"] > 0
    difference = report["ms"]["with"]["forward"] - report["ms"]["without"]["forward"]
    assert report["forward_overhead_ms"] == pytest.approx(difference, abs=1e-3)


def test_a_checkpoint_without_calibration_is_a_one_line_error(tmp_path, capsys):
    checkpoint = untrained_checkpoint(tmp_path / "weights.pth")
    assert bench_check.main(["--checkpoint", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make calibrate" in err
