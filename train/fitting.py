"""The numbers of the calibration's fit: calibration error, temperature, class statistics, the check's classifier.

Pure functions of arrays; ``train.calibrate`` feeds them the model's outputs on the calibration sets.
"""

import numpy as np
import torch

HIDDEN = 64  # units of the check's hidden layer
BINS = 15  # of the expected calibration error


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """ECE: |accuracy - confidence| in equal-width confidence bins, averaged with the bins' sizes as weights."""
    confidence, predicted = probabilities.double().max(1)
    correct = (predicted == labels).double()
    which = ((confidence * bins).ceil().long() - 1).clamp(0, bins - 1)
    # Per bin, size * |mean accuracy - mean confidence| = |sum of accuracies - sum of confidences|.
    gap = torch.bincount(which, correct - confidence, minlength=bins)
    return float(gap.abs().sum()) / max(len(labels), 1)


def fit_temperature(logits: list[torch.Tensor], labels: list[torch.Tensor]) -> float:
    """The T in [1/4, 4] with the lowest expected calibration error of softmax(logits / T), averaged over the sets.

    ECE, not the negative log-likelihood: the NLL is ruled by the few confident mistakes, and the T
    that minimised it made the ECE of held-out digits worse (docs/not-a-digit.md). T = 1 is on the grid.
    """
    grid = torch.logspace(-2, 2, 81, base=2.0)
    errors = [
        sum(expected_calibration_error(torch.softmax(x / t, 1), y) for x, y in zip(logits, labels, strict=True))
        for t in grid
    ]
    return float(grid[int(np.argmin(errors))])


def feature_starts(model) -> np.ndarray:
    """Where each layer's features begin in :func:`model.calibration.forward_with_features`'s output."""
    sizes = [2 * layer.out_channels for layer in model.features if isinstance(layer, torch.nn.Conv2d)]
    return np.cumsum([0, *sizes]).astype(np.int64)


def class_statistics(features: np.ndarray, labels: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whitening, centres) as :func:`model.calibration.class_distances` takes them.

    Per layer (a block of ``whitening``): a Cholesky factor of the inverse within-class covariance,
    and the class means times it.
    """
    z = features.astype(np.float64)
    means = np.stack([z[labels == k].mean(0) for k in range(10)])
    centred = z - means[labels]
    whitening = np.zeros((z.shape[1], z.shape[1]))
    for begin, end in zip(starts, [*starts[1:], z.shape[1]], strict=True):
        block = centred[:, begin:end]
        covariance = block.T @ block / len(z)
        # A small ridge: a few ReLU features are almost never active, so the covariance is near singular.
        covariance += 1e-4 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
        whitening[begin:end, begin:end] = np.linalg.cholesky(np.linalg.inv(covariance))
    return whitening.astype(np.float32), (means @ whitening).astype(np.float32)


def fit_classifier(
    digit_sets: list[np.ndarray],
    others: np.ndarray | list[np.ndarray],
    seed: int,
    epochs: int = 40,
    other_shares: list[float] | None = None,
) -> tuple:
    """A one-hidden-layer "not a digit" classifier on :func:`model.calibration.describe`'s columns.

    Each digit set weighs the same, and all of them together as much as the non-digits; the
    non-digit sets (one array or several) split their half by ``other_shares`` (default: equally).
    Returns (hidden weight (columns, H), hidden bias, output weight, output bias) as arrays, with the
    columns' standardisation folded into the hidden layer.
    """
    other_sets = [others] if isinstance(others, np.ndarray) else [o for o in others]
    shares = np.asarray(other_shares or [1.0] * len(other_sets), dtype=np.float64)
    shares = shares / shares.sum()
    x = torch.from_numpy(np.concatenate([*digit_sets, *other_sets]))
    n_others = sum(len(o) for o in other_sets)
    target = torch.cat([torch.zeros(len(x) - n_others), torch.ones(n_others)])
    weight = [torch.full((len(d),), 1.0 / (len(d) * len(digit_sets))) for d in digit_sets]
    weight += [
        torch.full((len(o),), float(share) / max(len(o), 1)) for o, share in zip(other_sets, shares, strict=True)
    ]
    weight = torch.cat(weight) * len(x) / 2
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    # The layers are too small to share between threads: one thread is faster, much more so on a busy machine.
    torch.set_num_threads(1)
    try:
        return _fit(x, z, target, weight, mean, std, epochs)
    finally:
        torch.set_num_threads(threads)


def _fit(x, z, target, weight, mean, std, epochs: int) -> tuple:
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))
    # foreach: the per-tensor loop's numbers in fewer operations per step, which is what a step of
    # layers this small costs.
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3, foreach=True)
    for _ in range(epochs):
        for batch in torch.randperm(len(z)).split(512):
            logit = net(z[batch])[:, 0]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target[batch], weight[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    hidden, output = net[0], net[2]
    with torch.no_grad():
        w = hidden.weight / std
        return w.T.numpy().copy(), (hidden.bias - w @ mean).numpy(), output.weight[0].numpy().copy(), float(output.bias)
