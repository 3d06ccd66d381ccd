"""scripts.accuracy.served's bookkeeping of the not-a-digit flags, with a made-up server."""

import numpy as np
import pytest
import torch

from model.calibration import calibration_path, save_calibration
from scripts.accuracy import photos
from scripts.accuracy import served as eval_server
from tests.support import untrained_checkpoint
from tests.test_accuracy_styles import FLAG_ALL

pytestmark = pytest.mark.unit

RESULTS = [
    (200, {"digit": 1, "is_digit": True}),
    (200, {"digit": 2, "is_digit": False, "note": "..."}),
    (400, {"code": 400, "error": "no digit found"}),
    (200, {"digit": 3, "is_digit": False, "note": "..."}),
]


def test_flags_count_only_answers_that_say_not_a_digit():
    assert eval_server.flags(RESULTS).tolist() == [False, True, False, True]
    assert eval_server.flagged_share(RESULTS) == 0.5
    assert eval_server.flagged_share([(200, {"digit": 1}), (400, {"error": "x"})]) is None  # no check on the server
    assert eval_server.summary(RESULTS, np.array([1, 2, 0, 4]))["flagged"] == 0.5


class ReplayClient:
    """Answers each body with the next of ``RESULTS``."""

    def __init__(self):
        self.answers = iter(RESULTS)
        self.content_types = []

    def predict(self, data: bytes, content_type: str):
        self.content_types.append(content_type)
        return next(self.answers)


def test_non_digit_sets_report_flagged_and_refused_shares():
    client = ReplayClient()
    report = eval_server.eval_non_digits(client, {"shapes": [(b"png", "image/png")] * 4}, concurrency=1)
    assert report == {
        "shapes": {
            "n": 4,
            "refused": 1,
            "flagged": 2,
            "flagged_share": 0.5,
            "flagged_or_refused_share": 0.75,
            "other_errors": 0,
        }
    }


def test_non_digit_bodies_are_the_rendered_files_with_their_types():
    sets = eval_server.non_digit_bodies(None, 0, 1, 0)
    held_out_photos = {"photos"} if photos.available() else set()
    assert set(sets) == {"scene", "texture", "text", "shapes", "scribble"} | held_out_photos
    assert all(content_type == "image/jpeg" for _, content_type in sets.get("photos", []))
    assert sets["scene"][0][1] == "image/jpeg" and sets["text"][0][1] == "image/png"
    assert eval_server.non_digit_bodies(None, 0, 0, 0) == {}


def test_offline_answers_use_the_checkpoints_calibration(tmp_path):
    checkpoint = untrained_checkpoint(tmp_path / "w.pth")
    bars = torch.zeros(3, 28, 28, dtype=torch.uint8)
    bars[:, 4:24, 12:16] = 255
    probabilities, flagged = eval_server.offline_answers(checkpoint, bars)
    assert probabilities.shape == (3, 10) and flagged is None
    save_calibration(calibration_path(checkpoint), FLAG_ALL, {})
    tempered, flagged = eval_server.offline_answers(checkpoint, bars)
    assert flagged.tolist() == [True, True, True]
    assert tempered.max() < probabilities.max()  # a temperature above 1 softens the answer
