"""Online batch selection: after the first epoch, each epoch visits a share of the training set, the
examples the model last found hard far more often than the easy ones (Loshchilov & Hutter, 2015).
The first epoch visits every example to record its loss. Easy examples still come back now and
then, and by default the saved weights are an average over the last few hundred steps (the EMA),
so the model does not drift towards the hard ones only.

Each example's loss is recorded whenever it is trained on, so the ranking costs no extra forward
pass; the losses are stale by up to a few epochs, which the ranking tolerates. Selection is by
rank, not by loss value: the hardest example is ``pressure`` times as likely to be picked as the
easiest, whatever the losses' scale, so a mislabelled digit cannot take over an epoch.
"""

from __future__ import annotations

import math

import torch


class LossRanking:
    """Per-example losses of the training set and the epoch orders drawn from them."""

    def __init__(self, size: int, share: float, pressure: float, generator: torch.Generator):
        self.size = size
        self.share = share
        self.pressure = pressure
        self.generator = generator
        self.losses = torch.full((size,), math.inf, device=generator.device)

    def epoch_size(self, epoch: int) -> int:
        """How many examples epoch ``epoch`` (from 1) visits: all of them the first time."""
        if epoch == 1 or self.share >= 1.0:
            return self.size
        return max(1, round(self.share * self.size))

    def order(self, epoch: int) -> torch.Tensor:
        """The indices epoch ``epoch`` visits, shuffled."""
        count = self.epoch_size(epoch)
        if count == self.size:
            return torch.randperm(self.size, device=self.losses.device, generator=self.generator)
        ranks = torch.empty(self.size, device=self.losses.device)
        ranks[torch.argsort(self.losses, descending=True, stable=True)] = torch.arange(
            self.size, device=self.losses.device, dtype=ranks.dtype
        )
        weights = torch.exp(ranks * (-math.log(self.pressure) / self.size))
        chosen = torch.multinomial(weights, count, replacement=False, generator=self.generator)
        return chosen[torch.randperm(count, device=chosen.device, generator=self.generator)]

    def record(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        self.losses[indices] = losses.detach().float()
