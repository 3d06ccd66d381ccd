"""scripts.cli.exit_now: a command's exit code and its last, unflushed output survive skipping the teardown."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("returned", "code"), [(0, 0), (None, 0), (1, 1), (2, 2)])
def test_exit_now_keeps_the_code_and_flushes_the_output(returned, code):
    program = (
        "import sys\n"
        "from scripts.cli import exit_now\n"
        "sys.stdout.write('last line, no newline')\n"  # still buffered when exit_now is called
        "sys.stderr.write('error: something\\n')\n"
        f"exit_now({returned!r})\n"
        "print('never reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == code
    assert done.stdout == "last line, no newline"
    assert done.stderr == "error: something\n"
