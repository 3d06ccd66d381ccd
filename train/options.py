"""The options of ``python -m train``: their defaults and the command-line parser."""

import argparse

from scripts.cli import OneLineParser, fraction, non_negative_int, positive_float, positive_int
from train.data import DEFAULT_ROOT

DEFAULTS = {
    "batch_size": 256,
    "optimizer": "sgd",
    "lr": 0.1,
    "weight_decay": 5e-4,
    "label_smoothing": 0.0,
    "ema_decay": 0.995,
    "clean_epochs": 3,
    "scale": 0.0,
    "elastic": 0.0,
    "elastic_cells": 4,
    "warmup": 0.25,
    "epochs": 10,
    "select": 0.6,
    "select_pressure": 100.0,
    # The last N training images are never trained on: train.calibrate fits the temperature and the
    # not-a-digit check's threshold on them.
    "holdout": 5000,
}


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def warmup_share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog="python -m train", description="Train the MNIST CNN: the weights and the evaluation reports."
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULTS["epochs"],
        help="passes over the training set (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=positive_int, default=DEFAULTS["batch_size"], help="default: %(default)s")
    p.add_argument(
        "--lr", type=positive_float, default=DEFAULTS["lr"], help="peak learning rate (default: %(default)s)"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=DEFAULTS["weight_decay"],
        help="on weights, not biases or BatchNorm (default: %(default)s)",
    )
    p.add_argument("--label-smoothing", type=fraction, default=DEFAULTS["label_smoothing"], help="default: %(default)s")
    p.add_argument(
        "--optimizer",
        choices=["sgd", "adamw"],
        default=DEFAULTS["optimizer"],
        help="SGD with Nesterov momentum, or AdamW (default: %(default)s)",
    )
    p.add_argument(
        "--schedule", choices=["onecycle", "cosine", "constant"], default="onecycle", help="default: %(default)s"
    )
    p.add_argument(
        "--ema-decay",
        type=fraction,
        default=DEFAULTS["ema_decay"],
        help="keep an exponential moving average of the weights and save it; 0 saves the raw weights "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--clean-epochs",
        type=int,
        default=DEFAULTS["clean_epochs"],
        help="train the last N epochs without augmentation (default: %(default)s)",
    )
    p.add_argument(
        "--scale",
        type=fraction,
        default=DEFAULTS["scale"],
        help="augmentation: scale each digit by U(1 - s, 1 + s) besides the rotation and shift (default: %(default)s)",
    )
    p.add_argument(
        "--elastic",
        type=non_negative_float,
        default=DEFAULTS["elastic"],
        help="augmentation: a smooth random distortion moving each pixel by about this many pixels; 0 is off "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--elastic-cells",
        type=positive_int,
        default=DEFAULTS["elastic_cells"],
        help="the distortion's smoothness: its random lattice is N x N cells over the image, fewer is smoother "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--warmup",
        type=warmup_share,
        default=DEFAULTS["warmup"],
        help="the one-cycle schedule's share of the run spent warming up (default: %(default)s)",
    )
    p.add_argument(
        "--select",
        type=share,
        default=DEFAULTS["select"],
        help="after the first epoch, visit this share of the training set per epoch, the examples with the "
        "highest recent loss most often; 1 visits all (default: %(default)s)",
    )
    p.add_argument(
        "--select-pressure",
        type=positive_float,
        default=DEFAULTS["select_pressure"],
        help="how much likelier the hardest example is picked than the easiest (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: %(default)s")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32"],
        default="auto",
        help="auto: bf16/fp16 autocast where the hardware runs it fast (default: %(default)s)",
    )
    p.add_argument("--data-dir", help="local copy of the MNIST IDX files (default: $MNIST_DIR, else download)")
    p.add_argument("--data-root", default=str(DEFAULT_ROOT), help="unpacked data set folder (default: %(default)s)")
    p.add_argument(
        "--holdout",
        type=non_negative_int,
        default=DEFAULTS["holdout"],
        help="keep the last N training images out of training, for train.calibrate (default: %(default)s)",
    )
    p.add_argument("--subset", type=positive_int, help="train on the first N training images only (quick runs)")
    p.add_argument("--checkpoint", default="mnist_cnn.pth", help="where the weights go (default: %(default)s)")
    p.add_argument("--reports-dir", default="reports", help="where metrics.json and figures go (default: %(default)s)")
    return p
