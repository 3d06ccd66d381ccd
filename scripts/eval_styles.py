"""Offline accuracy of a checkpoint on user-style pictures, per style, as JSON.

Renders MNIST test digits with :mod:`scripts.user_style`, decodes the file
bytes with Pillow as the server does, runs :func:`handler.preprocess.to_model_input`
and the model, and prints accuracy plus the decode and preprocessing cost per
image. Rendering (``user_style``) and scoring (here) are separate, so a live
server check can send the same bytes over HTTP instead.

    python -m scripts.eval_styles --checkpoint mnist_cnn.pth --per-style 500
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.decode import RequestError, decode_image
from handler.preprocess import PreprocessError, to_model_input
from model.inference import CheckpointError, load_for_inference
from scripts.user_style import STYLES, pick, render_bytes
from train.cli import OneLineParser, positive_int


def score_style(model, device, images, labels, style: str, n: int, seed: int) -> dict:
    """Accuracy and per-image cost on ``n`` renders of ``style``; refused pictures count as wrong."""
    inputs, targets, refused = [], [], 0
    decode_s = preprocess_s = 0.0
    for index in pick(len(labels), n, seed):
        data, _ = render_bytes(images[index], style, seed * 1_000_003 + int(index))
        t0 = t1 = time.perf_counter()
        try:
            image = decode_image(data)
            t1 = time.perf_counter()
            inputs.append(to_model_input(image))
            targets.append(int(labels[index]))
        except (RequestError, PreprocessError):  # the server would answer 400
            refused += 1
        t2 = time.perf_counter()
        decode_s += t1 - t0
        preprocess_s += t2 - t1
    correct = 0
    if inputs:
        with torch.no_grad():
            for batch, target in zip(torch.stack(inputs).split(256), torch.tensor(targets).split(256), strict=True):
                correct += int((model(batch.to(device)).argmax(1).cpu() == target).sum())
    return {
        "n": n,
        "accuracy": correct / n,
        "refused": refused,
        "decode_us": round(decode_s / n * 1e6, 1),
        "preprocess_us": round(preprocess_s / n * 1e6, 1),
    }


def score_mnist(model, device, images, labels) -> dict:
    """Accuracy on the plain MNIST test digits through the same preprocessing."""
    t0 = time.perf_counter()
    x = torch.stack([to_model_input(Image.fromarray(digit)) for digit in images])
    preprocess_s = time.perf_counter() - t0
    with torch.no_grad():
        predicted = torch.cat([model(batch.to(device)).argmax(1).cpu() for batch in x.split(1000)])
    return {
        "n": len(labels),
        "accuracy": float((predicted == torch.as_tensor(labels)).float().mean()),
        "preprocess_us": round(preprocess_s / len(labels) * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m scripts.eval_styles",
        description="Offline accuracy of a checkpoint on user-style renders of MNIST test digits (JSON).",
    )
    parser.add_argument("--checkpoint", default="mnist_cnn.pth", help="state_dict to score (default: %(default)s)")
    parser.add_argument("--per-style", type=positive_int, default=500, help="renders per style (default: %(default)s)")
    parser.add_argument(
        "--styles", nargs="+", default=list(STYLES), choices=list(STYLES), help="styles to score (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="picks the digits and the randomness (default: 0)")
    parser.add_argument("--mnist", action="store_true", help="also score all 10,000 plain MNIST test digits")
    parser.add_argument("--data-dir", help="local MNIST IDX copy (default: $MNIST_DIR, else data/ or download)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: %(default)s")
    parser.add_argument("--output", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    try:
        model = load_for_inference(args.checkpoint, device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    from train.data import load_mnist_or_report  # torchvision: imported only when needed

    if (splits := load_mnist_or_report(args.data_dir)) is None:
        return 1
    test = splits[1]
    images, labels = test.images.numpy(), test.labels.numpy()
    n = min(args.per_style, len(labels))
    report = {"checkpoint": str(args.checkpoint), "per_style": n, "seed": args.seed, "styles": {}}
    for style in args.styles:
        report["styles"][style] = score_style(model, device, images, labels, style, n, args.seed)
        print(f"{style}: {report['styles'][style]}", file=sys.stderr)
    accuracies = [s["accuracy"] for s in report["styles"].values()]
    report["overall_accuracy"] = float(np.mean(accuracies))
    report["min_style_accuracy"] = float(np.min(accuracies))
    if args.mnist:
        report["mnist_test"] = score_mnist(model, device, images, labels)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
