"""tests/conftest.py: every test has one kind; MNIST_DIR unset skips, MNIST_DIR set but wrong fails."""

import gzip

import pytest

# The conftest's MNIST check imports train.data (torch); an in-process run forgets the modules it imported,
# and torch cannot be imported twice in one process: import it before any run.
import train.data  # noqa: F401

pytestmark = pytest.mark.unit

NEEDS_MNIST = """
import pytest

pytestmark = pytest.mark.unit


def test_needs_mnist(mnist_dir):
    pass
"""


@pytest.fixture
def suite(pytester):
    """A test session of its own, with this project's conftest and one test that needs MNIST."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403")
    pytester.makepyfile(test_inner=NEEDS_MNIST)
    return pytester


def test_unset_mnist_dir_skips_with_the_reason(suite, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    result = suite.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs the full MNIST data set: set MNIST_DIR*"])


def junk_copy(path):
    path.mkdir()
    with gzip.open(path / "train-images-idx3-ubyte.gz", "wb") as file:
        file.write(b"\0\0\x08\x03" + bytes(100))
    return path


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda path: path, "does not exist"),
        (lambda path: path.write_text("a file") and path, "does not exist"),
        (lambda path: path.mkdir() or path, "has no train-images-idx3-ubyte"),
        (junk_copy, "fails its checksum"),
    ],
    ids=["missing", "a-file", "empty", "damaged"],
)
def test_mnist_dir_set_but_wrong_fails_loudly(suite, monkeypatch, tmp_path, make, words):
    monkeypatch.setenv("MNIST_DIR", str(make(tmp_path / "mnist")))
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*MNIST_DIR is set but unusable*{words}*"])


def test_tests_that_need_mnist_are_marked_and_deselected_by_it(suite, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", "/nowhere")  # not even looked at
    result = suite.runpytest("-m", "not mnist")
    result.assert_outcomes(deselected=1)


KINDLESS = """
import pytest


def test_none():
    pass


@pytest.mark.unit
@pytest.mark.e2e
def test_two():
    pass
"""


def test_a_test_without_exactly_one_kind_stops_the_session(pytester):
    pytester.makeconftest("from tests.conftest import *  # noqa: F403")
    pytester.makepyfile(test_kinds=KINDLESS)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*exactly one kind*", "*test_none: no kind", "*test_two: e2e, unit"])
