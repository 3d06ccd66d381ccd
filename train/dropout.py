"""A faster drop-in for ``nn.Dropout`` when training on the CPU.

``nn.Dropout`` draws its mask with ``bernoulli_``, which on the CPU costs about
one generator call per element (slower still where MKL's generator takes its slow
path). Taking eight random bytes from each 64-bit draw is much cheaper
(docs/decisions.md). The drop probability is rounded to a multiple of 1/256, exact
for the model's 0.25 and 0.5.
"""

import torch
from torch import nn

_INT64 = torch.iinfo(torch.int64)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool mask that is True with probability 1 - p, from the default generator."""
    n = shape.numel()
    words = torch.randint(_INT64.min, _INT64.max, ((n + 7) // 8,), dtype=torch.int64, device=device)
    return words.view(torch.uint8)[:n].view(shape) >= round(p * 256)


class ByteMaskDropout(nn.Dropout):
    """``nn.Dropout`` with its mask drawn by :func:`keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * keep_mask(x.shape, self.p, x.device) * (1.0 / (1.0 - self.p))


def use_byte_mask_dropout(model: nn.Module) -> nn.Module:
    """Swap every ``nn.Dropout`` of ``model`` for :class:`ByteMaskDropout` in place.

    Dropout holds no state, so the state_dict (and the saved checkpoint) is unchanged.
    """
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is nn.Dropout:
                setattr(module, name, ByteMaskDropout(child.p).train(child.training))
    return model
