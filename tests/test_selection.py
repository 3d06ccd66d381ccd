"""Online batch selection (train.selection): which examples an epoch visits, and a run that uses it."""

import pytest
import torch

from train.run import build_parser, train
from train.selection import LossRanking

pytestmark = pytest.mark.unit


def ranking(size=10_000, share=0.3, pressure=100.0, seed=0) -> LossRanking:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return LossRanking(size, share, pressure, generator)


def test_the_first_epoch_visits_every_example_once_the_later_ones_the_share():
    r = ranking()
    assert sorted(r.order(1).tolist()) == list(range(10_000))
    r.record(torch.arange(10_000), torch.rand(10_000))
    assert [r.epoch_size(e) for e in range(1, 6)] == [10_000, 3_000, 3_000, 3_000, 3_000]


def test_later_epochs_visit_the_share_without_repeats():
    r = ranking()
    r.record(torch.arange(10_000), torch.rand(10_000))
    order = r.order(2)
    assert len(order) == r.epoch_size(2) == 3_000
    assert len(set(order.tolist())) == 3_000
    assert 0 <= int(order.min()) and int(order.max()) < 10_000


def test_hard_examples_are_picked_far_more_often_than_easy_ones():
    r = ranking(pressure=100.0)
    losses = torch.linspace(1.0, 0.0, 10_000)  # example 0 the hardest, 9,999 the easiest
    r.record(torch.arange(10_000), losses)
    picked = torch.zeros(10_000)
    for _ in range(20):
        picked[r.order(2)] += 1
    hardest, easiest = picked[:1000].mean(), picked[-1000:].mean()
    assert hardest > 10 * easiest, (hardest, easiest)
    assert easiest > 0  # easy examples still come back now and then


def test_the_ranking_follows_rank_not_loss_scale():
    """One huge loss (a mislabelled digit) changes nothing but its own rank."""
    a, b = ranking(seed=3), ranking(seed=3)
    losses = torch.linspace(1.0, 0.0, 10_000)
    a.record(torch.arange(10_000), losses)
    b.record(torch.arange(10_000), torch.cat([losses[:1] * 1e6, losses[1:]]))
    assert torch.equal(a.order(2), b.order(2))


def test_recorded_losses_replace_the_stale_ones():
    r = ranking(size=4, share=0.5)
    r.record(torch.tensor([0, 2]), torch.tensor([0.5, 0.25]))
    r.record(torch.tensor([2]), torch.tensor([2.0]))
    assert r.losses[0] == 0.5 and r.losses[2] == 2.0 and torch.isinf(r.losses[1])


def test_a_share_of_one_visits_everything_every_epoch():
    r = ranking(share=1.0)
    r.record(torch.arange(10_000), torch.rand(10_000))
    assert r.epoch_size(5) == 10_000 and sorted(r.order(5).tolist()) == list(range(10_000))


def test_a_run_with_selection_trains_fewer_steps_and_learns(tmp_path):
    from tests.test_train import rendered_digits

    digits = rendered_digits(1000, seed=1), rendered_digits(300, seed=2)
    options = ["--batch-size", "64", "--lr", "0.02", "--device", "cpu"]
    common = ["--reports-dir", str(tmp_path / "r")]

    def run(*extra: str) -> dict:
        return train(build_parser().parse_args([*options, *common, *extra]), *digits, log=lambda _: None)

    full = run("--epochs", "4", "--checkpoint", str(tmp_path / "a.pth"), "--select", "1")
    # As many examples in all: the first epoch visits every one, the later ones half.
    picked = run("--epochs", "7", "--checkpoint", str(tmp_path / "b.pth"), "--select", "0.5")
    assert [h["examples"] for h in full["history"]] == [1000] * 4
    assert [h["examples"] for h in picked["history"]] == [1000] + [500] * 6
    assert picked["test_accuracy"] > 0.6  # chance is 0.1
    # The later epochs visit the examples the model finds hardest: a higher training loss than a full pass.
    assert picked["history"][3]["train_loss"] > full["history"][3]["train_loss"]


def test_selection_is_deterministic_for_a_seed(tmp_path):
    from tests.test_train import rendered_digits

    digits = rendered_digits(300, seed=1), rendered_digits(100, seed=2)
    weights = []
    for name in ("a", "b"):
        argv = ["--epochs", "2", "--batch-size", "64", "--select", "0.5", "--seed", "5", "--device", "cpu"]
        argv += ["--checkpoint", str(tmp_path / f"{name}.pth"), "--reports-dir", str(tmp_path / name)]
        train(build_parser().parse_args(argv), *digits, log=lambda _: None)
        weights.append(torch.load(tmp_path / f"{name}.pth"))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
