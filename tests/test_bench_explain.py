"""The explanation benchmark's command line: `python -m scripts.bench.explain` refuses bad runs in one line."""

import os
import subprocess
import sys

import pytest

from scripts.serving.paths import ROOT
from tests.support import untrained_checkpoint

pytestmark = pytest.mark.unit


def bench(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scripts.bench.explain", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_help_names_the_command():
    result = bench("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m scripts.bench.explain")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint", "missing.pth"], "error: no checkpoint at missing.pth: run `make train` first"),
        (["--repeats", "1"], "error: --repeats starts at 2"),
        (["--baseline-root", "."], "is not a checkout of this bundle"),
        (["--rounds", "0"], "error: argument --rounds: must be a positive integer"),
    ],
)
def test_bad_runs_are_one_line_errors(tmp_path, args, message):
    checkpoint = untrained_checkpoint(tmp_path / "w.pth")
    result = bench("--checkpoint", str(checkpoint), "--out", str(tmp_path / "r.json"), *args, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "r.json").exists()
