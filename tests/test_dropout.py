import platform
import resource

import pytest
import torch
from torch import nn

from model import MnistCNN
from train.allocator import keep_freed_memory
from train.dropout import ByteMaskDropout, keep_mask, use_byte_mask_dropout

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_keep_mask_keeps_one_minus_p(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([64, 64, 7, 7]), p, torch.device("cpu"))
    assert mask.dtype == torch.bool and mask.shape == (64, 64, 7, 7)
    assert mask.float().mean().item() == pytest.approx(1 - p, abs=0.005)


def test_byte_mask_dropout_matches_nn_dropout_in_effect():
    torch.manual_seed(0)
    x = torch.rand(200_000) + 0.5
    drop = ByteMaskDropout(0.25)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    assert y.mean().item() == pytest.approx(x.mean().item(), rel=0.01)
    assert torch.equal(drop.eval()(x), x)


def test_swap_keeps_the_state_dict_and_the_eval_output():
    torch.manual_seed(0)
    model = MnistCNN().eval()
    x = torch.randn(4, 1, 28, 28)
    before, keys = model(x), list(model.state_dict())
    use_byte_mask_dropout(model)
    assert sum(isinstance(m, ByteMaskDropout) for m in model.modules()) == 2
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert list(model.state_dict()) == keys
    assert torch.equal(model(x), before)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_activations_are_reused_not_page_faulted_in_again():
    assert keep_freed_memory() is True
    pages = (20 << 20) // resource.getpagesize()
    for _ in range(2):  # the heap grows to hold it
        torch.empty(20 << 20, dtype=torch.uint8).fill_(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):  # 20 MB a time, freed each time: a training step's activations
        torch.empty(20 << 20, dtype=torch.uint8).fill_(1)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # Handed back to the kernel (glibc's defaults), the block faults in again on every
    # reuse; kept, the heap grows at most once or twice more.
    assert faults < 2 * pages
