"""Max-pooling before the ReLU in training: the same network, a cheaper step on the CPU.

Max-pooling and ReLU commute (both keep order, ReLU acts on each value alone), so
``relu(maxpool(x))`` equals ``maxpool(relu(x))`` exactly, and their gradients reach the same
inputs. With the pooling first, the ReLU and its backward pass run on a quarter of the
values, and the pooling's backward pass on bf16 channels-last activations is cheaper
(docs/decisions.md). The model's definition keeps the spec's order: served weights and
features are unchanged.
"""

from torch import nn


def pool_before_relu(model: nn.Module) -> nn.Module:
    """Swap every ``ReLU`` directly followed by ``MaxPool2d`` in ``model``'s ``nn.Sequential`` blocks, in place.

    Neither holds state, so the state_dict (and the saved checkpoint) keeps its keys.
    """
    for block in model.modules():
        if not isinstance(block, nn.Sequential):
            continue
        layers = list(block)
        for i in range(len(layers) - 1):
            if isinstance(layers[i], nn.ReLU) and isinstance(layers[i + 1], nn.MaxPool2d):
                block[i], block[i + 1] = layers[i + 1], layers[i]
                layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return model
