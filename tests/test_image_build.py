"""`make image` without a container engine: one line and exit status 1, never a silent success."""

import os
import shutil
import subprocess

import pytest

from scripts.serving.paths import ROOT

pytestmark = pytest.mark.unit


def test_no_working_engine_is_one_line_and_exit_1(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sed", "timeout", "date", "numfmt"):
        os.symlink(shutil.which(tool), tools / tool)
    # A docker client whose daemon does not answer, as on a machine with docker's CLI only.
    (tools / "docker").write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    (tools / "docker").chmod(0o755)
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts/setup/build_image.sh"), "mnist-serve:test", str(tmp_path)],
        cwd=ROOT,
        env={"PATH": str(tools)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("make image: no working container engine") and "image-host" in result.stderr
