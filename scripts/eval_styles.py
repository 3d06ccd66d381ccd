"""Offline accuracy of a checkpoint on user-style pictures, per style, as JSON.

Renders MNIST test digits with :mod:`scripts.user_style`, decodes the file
bytes with Pillow as the server does, runs :func:`handler.preprocess.to_model_input`
and the model, and prints accuracy plus the decode and preprocessing cost per
image. Rendering (``user_style``) and scoring (here) are separate, so a live
server check can send the same bytes over HTTP instead.

``--plain`` also scores each style through :func:`plain_recipe`, the textbook
MNIST preprocessing, as a yardstick (it is not the served path). ``--split train``
renders training digits instead, for tuning the preprocessing without looking
at the test renders.

    python -m scripts.eval_styles --checkpoint mnist_cnn.pth --per-style 500 --plain
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.decode import RequestError, decode_image
from handler.preprocess import FIT, SIDE, PreprocessError, to_model_input
from model import normalize
from model.inference import CheckpointError, load_for_inference
from scripts.user_style import STYLES, pick, render_bytes
from train.cli import OneLineParser, positive_int


def plain_recipe(image: Image.Image) -> torch.Tensor:
    """The textbook MNIST preprocessing: grey, ink made bright (by the border's level), stretched, thresholded
    at half its range, cropped to the ink, fitted in 20x20 keeping the aspect, centred by mass in 28x28."""
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    x = 1.0 - grey if border.mean() > 0.5 else grey
    low, high = float(x.min()), float(x.max())
    if high - low < 1e-3:
        raise PreprocessError("blank")
    x = (x - low) / (high - low)
    rows, cols = np.flatnonzero((x > 0.5).any(axis=1)), np.flatnonzero((x > 0.5).any(axis=0))
    crop = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = FIT / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
    index_y, index_x = np.arange(small.shape[0]), np.arange(small.shape[1])
    cy, cx = small.sum(axis=1) @ index_y / small.sum(), small.sum(axis=0) @ index_x / small.sum()
    top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - small.shape[0]))
    left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - small.shape[1]))
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return normalize(torch.from_numpy(out)).unsqueeze(0)


def score_style(model, device, images, labels, style: str, n: int, seed: int, plain: bool = False) -> dict:
    """Accuracy and per-image cost on ``n`` renders of ``style``; with ``plain``, also :func:`plain_recipe`'s."""
    pictures, targets = [], []
    decode_s = 0.0
    for index in pick(len(labels), n, seed):
        data, _ = render_bytes(images[index], style, seed * 1_000_003 + int(index))
        t0 = time.perf_counter()
        try:
            image = decode_image(data)
        except RequestError:  # the server would answer 400: counted as refused
            image = None
        decode_s += time.perf_counter() - t0
        pictures.append(image)
        targets.append(int(labels[index]))
    row = {"n": n, **score_recipe(model, device, pictures, targets, to_model_input)}
    row["decode_us"] = round(decode_s / n * 1e6, 1)
    if plain:
        row["plain"] = score_recipe(model, device, pictures, targets, plain_recipe)
    return row


def score_recipe(model, device, pictures: list, targets: list[int], recipe) -> dict:
    """Accuracy of ``model`` on ``pictures`` preprocessed by ``recipe``; refused pictures count as wrong."""
    inputs, kept, refused = [], [], 0
    t0 = time.perf_counter()
    for image, target in zip(pictures, targets, strict=True):
        try:
            if image is None:
                raise PreprocessError("not decoded")
            inputs.append(recipe(image))
            kept.append(target)
        except PreprocessError:
            refused += 1
    preprocess_s = time.perf_counter() - t0
    correct = 0
    if inputs:
        with torch.no_grad():
            for batch, target in zip(torch.stack(inputs).split(256), torch.tensor(kept).split(256), strict=True):
                correct += int((model(batch.to(device)).argmax(1).cpu() == target).sum())
    return {
        "accuracy": correct / len(targets),
        "refused": refused,
        "preprocess_us": round(preprocess_s / len(targets) * 1e6, 1),
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
        description="Offline accuracy of a checkpoint on user-style renders of MNIST digits (JSON).",
    )
    parser.add_argument("--checkpoint", default="mnist_cnn.pth", help="state_dict to score (default: %(default)s)")
    parser.add_argument("--per-style", type=positive_int, default=500, help="renders per style (default: %(default)s)")
    parser.add_argument(
        "--styles", nargs="+", default=list(STYLES), choices=list(STYLES), help="styles to score (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="picks the digits and the randomness (default: 0)")
    parser.add_argument("--mnist", action="store_true", help="also score all 10,000 plain MNIST test digits")
    parser.add_argument("--plain", action="store_true", help="also score each style through the textbook recipe")
    parser.add_argument(
        "--split",
        default="test",
        choices=["test", "train"],
        help="render digits of this MNIST split (default: %(default)s; tune on train, report on test)",
    )
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
    source = splits[0] if args.split == "train" else test
    images, labels = source.images.numpy(), source.labels.numpy()
    n = min(args.per_style, len(labels))
    report = {"checkpoint": str(args.checkpoint), "split": args.split, "per_style": n, "seed": args.seed, "styles": {}}
    for style in args.styles:
        report["styles"][style] = score_style(model, device, images, labels, style, n, args.seed, args.plain)
        print(f"{style}: {report['styles'][style]}", file=sys.stderr)
    accuracies = [s["accuracy"] for s in report["styles"].values()]
    report["overall_accuracy"] = float(np.mean(accuracies))
    report["min_style_accuracy"] = float(np.min(accuracies))
    if args.mnist:
        report["mnist_test"] = score_mnist(model, device, test.images.numpy(), test.labels.numpy())
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
