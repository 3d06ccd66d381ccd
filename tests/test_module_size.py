"""Small modules with one job: no source file outside tests/ is over 300 lines."""

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 300
SOURCES = ("*.py", "*.js", "*.sh", "*.lua", "*.css", "*.html")


def source_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", *SOURCES], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted(name for name in listed.stdout.split() if not name.startswith("tests/"))


def lines(name: str) -> int:
    return len((ROOT / name).read_text().splitlines())


@pytest.mark.parametrize("name", source_files())
def test_no_module_outside_the_tests_is_over_the_limit(name):
    assert lines(name) <= LIMIT, f"{name} has {lines(name)} lines: split it by job"
