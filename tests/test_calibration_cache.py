"""train.calibration_cache: the calibration's pictures kept per set, by content."""

import numpy as np
import pytest
import torch

from train.calibration_cache import cached_sets
from train.calibration_sets import chunks

pytestmark = pytest.mark.unit


def jobs(sets: dict[str, int]) -> list:
    """Plain 28x28 pictures (a bright bar at a different place per index), ``n`` per named set."""
    made = []
    for name, n in sets.items():
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i in range(n):
            images[i, 4 + i % 20 : 8 + i % 20, 6:22] = 255
        made += chunks(name, "plain", np.arange(n), images, np.arange(n) % 10)
    return made


def test_a_set_added_is_the_only_one_made(tmp_path):
    logged = []
    first = cached_sets(jobs({"a": 70, "b": 5}), tmp_path, 1, logged.append)
    assert logged[-1].startswith("made 75 ")
    assert len(list(tmp_path.glob("calibration-set-*.pt"))) == 2
    logged.clear()
    second = cached_sets(jobs({"a": 70, "b": 5, "c": 3}), tmp_path, 1, logged.append)
    assert logged[0].startswith("2 of the calibration's 3 picture sets from")
    assert logged[-1].startswith("made 3 ")
    assert list(second) == ["a", "b", "c"]
    for name in ("a", "b"):
        assert torch.equal(first[name][0], second[name][0]) and torch.equal(first[name][1], second[name][1])


def test_other_pictures_are_another_set_and_a_damaged_file_is_made_again(tmp_path):
    cached_sets(jobs({"a": 4}), tmp_path, 1, lambda _: None)
    logged = []
    cached_sets(jobs({"a": 5}), tmp_path, 1, logged.append)  # one picture more: another key
    assert len(logged) == 1 and logged[0].startswith("made 5 ")
    for path in tmp_path.glob("calibration-set-*.pt"):
        path.write_bytes(b"not a tensor file")
    logged.clear()
    again = cached_sets(jobs({"a": 5}), tmp_path, 1, logged.append)
    assert logged[-1].startswith("made 5 ") and len(again["a"][1]) == 5


def test_no_cache_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = cached_sets(jobs({"a": 3}), None, 1, lambda _: None)
    assert len(sets["a"][1]) == 3 and not any(tmp_path.iterdir())
