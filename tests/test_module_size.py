"""Small modules with one job: no source file outside tests/ is over 300 lines."""

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 300
SOURCES = ("*.py", "*.js", "*.sh", "*.lua", "*.css", "*.html")
# Being split on other branches; strict: once a file is back under the limit, its entry must go.
BEING_SPLIT = {
    "scripts/deploy/check.py": "the deployment checker is being split",
    "train/renderers/user_style.py": "the user-style renderer is being split",
}


def source_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", *SOURCES], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted(name for name in listed.stdout.split() if not name.startswith("tests/"))


def lines(name: str) -> int:
    return len((ROOT / name).read_text().splitlines())


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=BEING_SPLIT[name]))
        if name in BEING_SPLIT
        else name
        for name in source_files()
    ],
)
def test_no_module_outside_the_tests_is_over_the_limit(name):
    assert lines(name) <= LIMIT, f"{name} has {lines(name)} lines: split it by job"


def test_the_exceptions_are_files_that_exist():
    assert set(BEING_SPLIT) <= set(source_files())
