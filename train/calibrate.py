"""Fit the temperature and the not-a-digit check of a checkpoint: ``python -m train.calibrate`` (``make calibrate``).

On MNIST's training split only. Digits the CNN trained on (all but the last ``--holdout``) give
the class statistics and the digit side of the check's classifier; the held-out digits, as they
are, in the user styles and as thick or low-resolution variants, give the temperature and the
threshold, which flags at most ``--target`` of each held-out set. Fashion-MNIST's training split
is the non-digit side. Writes ``<checkpoint stem>.calibration.pt`` next to the checkpoint and
``calibration.json`` in the reports dir. Run it again whenever the preprocessing changes.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model.calibration import (
    Calibration,
    DigitCheck,
    calibration_path,
    describe,
    forward_with_features,
    save_calibration,
)
from model.inference import CheckpointError, load_for_inference
from scripts.cli import CliError, OneLineParser, check_writable_dir, fail, fraction, positive_int
from train import calibration_sets
from train.data import DEFAULT_ROOT, DataError, load_mnist
from train.fashion import INSTALL_HINT, available, fashion_dir, load_fashion
from train.renderers.user_style import STYLES

HIDDEN = 32  # units of the check's hidden layer
BINS = 15  # of the expected calibration error


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """ECE: |accuracy - confidence| in equal-width confidence bins, averaged with the bins' sizes as weights."""
    confidence, predicted = probabilities.max(1)
    correct = (predicted == labels).float()
    which = ((confidence * bins).ceil().long() - 1).clamp(0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += float(inside.sum()) * abs(float(correct[inside].mean() - confidence[inside].mean()))
    return total / max(len(labels), 1)


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


def fit_classifier(digit_sets: list[np.ndarray], others: np.ndarray, seed: int, epochs: int = 30) -> tuple:
    """A one-hidden-layer "not a digit" classifier on :func:`model.calibration.describe`'s columns.

    Each digit set weighs the same, and all of them together as much as the non-digits.
    Returns (hidden weight (columns, H), hidden bias, output weight, output bias) as arrays, with the
    columns' standardisation folded into the hidden layer.
    """
    x = torch.from_numpy(np.concatenate([*digit_sets, others]))
    target = torch.cat([torch.zeros(len(x) - len(others)), torch.ones(len(others))])
    weight = torch.cat([torch.full((len(d),), 1.0 / (len(d) * len(digit_sets))) for d in digit_sets])
    weight = torch.cat([weight, torch.full((len(others),), 1.0 / len(others))]) * len(x) / 2
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
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


@torch.inference_mode()
def forward_all(model, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and :func:`forward_with_features`'s features of many inputs, 1000 at a time."""
    parts = [forward_with_features(model, batch) for batch in inputs.split(1000)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def digit_sets(images: np.ndarray, labels: np.ndarray, args, log) -> tuple[dict, dict]:
    """({name: (inputs, labels)} to fit on, the same held out): digits, user-style renders, variants.

    Each user style is a set of its own, fitted on and held out: the classifier weighs every style
    as much as plain digits (a rare style's odd pictures would otherwise set the threshold), and the
    threshold keeps every style's flagged share within the target.
    """
    rng = np.random.default_rng(args.seed)
    n_fit = len(labels) - args.holdout
    fit_index = rng.choice(n_fit, min(args.fit_digits, n_fit), replace=False)
    held_index = np.arange(n_fit, len(labels))
    fit, held = {}, {}
    fit["digits"] = calibration_sets.digits(images, labels, fit_index)
    held["digits"] = calibration_sets.digits(images, labels, held_index)
    start = time.perf_counter()

    def some(pool: np.ndarray, n: int) -> np.ndarray:
        return rng.choice(pool, min(n, len(pool)), replace=False)

    for style in STYLES:
        fit[f"style {style}"] = calibration_sets.renders(
            images, labels, some(fit_index, args.fit_per_style), args.seed + 1, [style]
        )
        held[f"style {style}"] = calibration_sets.renders(
            images, labels, some(held_index, args.per_style), args.seed + 2, [style]
        )
    fit["variants"] = calibration_sets.variants(images, labels, some(fit_index, args.renders), args.seed + 3)
    held["variants"] = calibration_sets.variants(images, labels, some(held_index, args.renders), args.seed + 4)
    log(f"rendered the user-style digits and the variants in {time.perf_counter() - start:.0f}s")
    return fit, held


def calibrate(model, images: np.ndarray, labels: np.ndarray, fashion: np.ndarray | None, args, log=print):
    """Fit on the training split (its last ``args.holdout`` held out); return (calibration, report)."""
    fit, held = digit_sets(images, labels, args, log)
    held_logits = {name: forward_all(model, x)[0] for name, (x, _) in held.items()}
    styles = [name for name in held if name.startswith("style ")]
    held_logits["user_styles"] = torch.cat([held_logits[name] for name in styles])
    held_labels = {name: y for name, (_, y) in held.items()} | {"user_styles": torch.cat([held[n][1] for n in styles])}
    temperature = fit_temperature(
        [held_logits["digits"], held_logits["user_styles"]], [held_labels["digits"], held_labels["user_styles"]]
    )
    report = {
        "holdout": args.holdout,
        "temperature": temperature,
        "digits": {"fit": {k: len(v[1]) for k, v in fit.items()}, "held_out": {k: len(v[1]) for k, v in held.items()}},
        "held_out_ece": {
            name: {
                "before": expected_calibration_error(torch.softmax(held_logits[name], 1), held_labels[name]),
                "after": expected_calibration_error(
                    torch.softmax(held_logits[name] / temperature, 1), held_labels[name]
                ),
            }
            for name in ("digits", "user_styles", "variants")
        },
    }
    if fashion is None:
        return Calibration(temperature, None), report

    starts = feature_starts(model)
    _, features = forward_all(model, fit["digits"][0])
    whitening, centres = class_statistics(features.numpy(), fit["digits"][1].numpy(), starts)

    def columns(inputs: torch.Tensor) -> np.ndarray:
        logits, features = forward_all(model, inputs)
        return describe(features.numpy(), logits.numpy(), whitening, centres, starts)

    others = calibration_sets.non_digits(fashion)
    log(f"fitting the not-a-digit check on {sum(len(v[1]) for v in fit.values())} digits and {len(others)} non-digits")
    weights = fit_classifier([columns(x) for x, _ in fit.values()], columns(others), args.seed)
    unfinished = DigitCheck(whitening, centres, starts, *weights, threshold=float("inf"))

    def scores(inputs: torch.Tensor) -> torch.Tensor:
        logits, features = forward_all(model, inputs)
        return torch.from_numpy(unfinished.score(features, logits))

    held_scores = {name: scores(x) for name, (x, _) in held.items()}
    threshold = max(float(torch.quantile(s, 1.0 - args.target)) for s in held_scores.values())
    check = DigitCheck(whitening, centres, starts, *weights, threshold=threshold)
    report["check"] = {
        "threshold": threshold,
        "target": args.target,
        "fashion_train_used": len(others),
        "fashion_train_refused_by_preprocessing": len(fashion) - len(others),
        "held_out_flagged": {name: float((s > threshold).float().mean()) for name, s in held_scores.items()},
        "fashion_train_flagged": float((scores(others) > threshold).float().mean()),
    }
    return Calibration(temperature, check), report


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m train.calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="mnist_cnn.pth", help="state_dict to calibrate (default: %(default)s)")
    p.add_argument("--output", help="default: <checkpoint stem>.calibration.pt next to the checkpoint")
    p.add_argument("--holdout", type=positive_int, default=5000, help="as python -m train's (default: %(default)s)")
    p.add_argument(
        "--fit-digits", type=positive_int, default=20000, help="trained-on digits to fit on (default: %(default)s)"
    )
    p.add_argument(
        "--fit-per-style",
        type=positive_int,
        default=300,
        help="renders of trained-on digits per user style to fit on (default: %(default)s)",
    )
    p.add_argument(
        "--renders",
        type=positive_int,
        default=1500,
        help="thick or low-resolution variants to fit on, and to hold out (default: %(default)s)",
    )
    p.add_argument(
        "--per-style", type=positive_int, default=250, help="held-out renders per user style (default: %(default)s)"
    )
    p.add_argument("--fashion", type=positive_int, default=60000, help="Fashion-MNIST training items (default: all)")
    p.add_argument(
        "--target", type=fraction, default=0.003, help="most flagged of each held-out set (default: %(default)s)"
    )
    p.add_argument("--fashion-dir", help="Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, else Debian's)")
    p.add_argument("--data-dir", help="local copy of the MNIST IDX files (default: $MNIST_DIR, else download)")
    p.add_argument("--data-root", default=str(DEFAULT_ROOT), help="unpacked data set folder (default: %(default)s)")
    p.add_argument("--reports-dir", default="reports", help="where calibration.json goes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = Path(args.output) if args.output else calibration_path(args.checkpoint)
    try:
        check_writable_dir(Path(args.reports_dir), "reports dir")
        check_writable_dir(output.parent, "folder of the calibration")
        model = load_for_inference(args.checkpoint, "cpu")
        train, _ = load_mnist(args.data_dir, args.data_root)
    except (CliError, CheckpointError, DataError, ValueError) as err:
        return fail(str(err))
    if args.holdout >= len(train):
        return fail(f"--holdout must be below {len(train)}")
    fashion = None
    if available(args.fashion_dir):
        fashion = load_fashion("train", args.fashion_dir)[: args.fashion]
    else:
        print(
            f"note: no Fashion-MNIST in {fashion_dir(args.fashion_dir)} ({INSTALL_HINT}): calibrating the "
            "confidence only, no not-a-digit check",
            file=sys.stderr,
        )
    torch.manual_seed(args.seed)
    calibration, report = calibrate(model, train.images.numpy(), train.labels.numpy(), fashion, args)
    report["checkpoint"] = str(args.checkpoint)
    save_calibration(output, calibration, report)
    (Path(args.reports_dir) / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    check = report.get("check")
    flagged = ", ".join(f"{k} {v:.2%}" for k, v in check["held_out_flagged"].items()) if check else "no check"
    print(f"temperature {calibration.temperature:.3f}; held-out digits flagged: {flagged}; written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
