"""One batch on its way through the handler: what preprocessing made of each request, then the model's answer.

``MnistHandler.preprocess`` returns a :class:`Batch`, ``inference`` adds the model's
:class:`model.calibration.Answer` to it, ``postprocess`` turns it into one response per request.
Each stage reads what it needs from the batch it is handed: no state lives on the handler between
stages, so a batch's errors cannot leak into the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from model.calibration import Answer


@dataclass(frozen=True)
class Batch:
    """The good requests' model inputs in request order, and a (status, message) per bad request."""

    inputs: torch.Tensor  # (n_good, 1, 28, 28)
    errors: dict[int, tuple[int, str]] = field(default_factory=dict)  # request index -> (HTTP status, message)
    answer: Answer | None = None  # the forward pass's output, one row per good request

    @classmethod
    def of(cls, inputs: torch.Tensor) -> Batch:
        """A batch of good requests only (what BaseHandler's ``inference(tensor)`` contract hands over)."""
        return cls(inputs)

    @property
    def size(self) -> int:
        """Requests in the batch, good and bad."""
        return len(self.inputs) + len(self.errors)

    def good(self) -> list[int]:
        """The request index of each row of ``inputs``, in order."""
        return [index for index in range(self.size) if index not in self.errors]

    def refuse(self, refused: dict[int, tuple[int, str]]) -> Batch:
        """The batch without the good requests in ``refused``: they become errors and leave ``inputs``."""
        keep = [row for row, index in enumerate(self.good()) if index not in refused]
        return replace(self, inputs=self.inputs[keep], errors={**self.errors, **refused})

    def answered(self, answer: Answer) -> Batch:
        return replace(self, answer=answer)
