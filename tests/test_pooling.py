import copy

import pytest
import torch
from torch import nn

from model import MnistCNN
from train.pooling import pool_before_relu

pytestmark = pytest.mark.unit


def _kinds(block: nn.Sequential) -> list[str]:
    return [type(layer).__name__ for layer in block]


def test_pooling_moves_before_each_relu_and_the_state_dict_keeps_its_keys():
    model = MnistCNN()
    keys = list(model.state_dict())
    pool_before_relu(model)
    assert _kinds(model.features) == [
        "Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU", "Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU"
    ]  # fmt: skip
    assert _kinds(model.classifier) == _kinds(MnistCNN().classifier)  # no pooling there: unchanged
    assert list(model.state_dict()) == keys
    assert list(pool_before_relu(model).features) == list(model.features)  # a second call changes nothing


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_training_step_is_the_same_in_either_order(dtype):
    """Outputs, loss and every gradient equal the spec order's, in training mode (batch statistics)."""
    torch.manual_seed(0)
    spec = MnistCNN(dropout=0.0, fc_dropout=0.0).train().to(memory_format=torch.channels_last)
    swapped = pool_before_relu(copy.deepcopy(spec))
    x = torch.randn(16, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (16,))
    results = []
    for model in (spec, swapped):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        results.append((logits, loss, [p.grad for p in model.parameters()], [b.clone() for b in model.buffers()]))
    (logits_a, loss_a, grads_a, buffers_a), (logits_b, loss_b, grads_b, buffers_b) = results
    assert torch.equal(logits_a, logits_b) and torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(buffers_a, buffers_b, strict=True))  # BN's running statistics
