"""scripts.bench.first_answer: what it refuses before cloning anything (a real run trains: minutes)."""

import pytest

from scripts.bench import first_answer

pytestmark = pytest.mark.unit


def test_without_mnist_dir_it_says_what_to_set(monkeypatch, capsys):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    assert first_answer.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: set MNIST_DIR") and err.count("\n") == 1


def test_an_unknown_revision_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    assert first_answer.main(["--rev", "no-such-branch-here"]) == 1
    err = capsys.readouterr().err
    assert err == "error: --rev no-such-branch-here: not a commit of this repository\n"
