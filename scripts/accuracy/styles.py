"""Offline accuracy, not-a-digit flags and calibration of a checkpoint on user-style pictures, per style, as JSON.

Renders MNIST test digits with :mod:`train.renderers.user_style`, decodes the file
bytes with Pillow as the server does, runs :func:`handler.preprocess.to_model_input`
and the model through :func:`model.calibration.answer` with the checkpoint's
calibration (as the handler does), and prints per style the accuracy, the share
flagged "not a digit", the expected calibration error before and after the
temperature, and the decode and preprocessing cost per image. Rendering
(``user_style``) and scoring (here) are separate, so a live server check
(``scripts.accuracy.served``) can send the same bytes over HTTP instead.

``--plain`` also scores each style through :func:`plain_recipe`, the textbook
MNIST preprocessing, as a yardstick (it is not the served path). ``--split train``
renders training digits instead, for tuning the preprocessing without looking
at the test renders. ``--non-digits`` adds Fashion-MNIST's test split and the
pictures of :mod:`train.renderers.non_digits`: how many are flagged, how many refused
(:mod:`scripts.accuracy.non_digits`).

    python -m scripts.accuracy.styles --checkpoint mnist_cnn.pth --per-style 500 --plain --mnist --non-digits
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.decode import RequestError, decode_image
from handler.preprocess import FIT, SIDE, PreprocessError, to_model_input
from model import normalize
from model.calibration import answer, calibration_path, load_calibration
from model.inference import CheckpointError, load_for_inference
from scripts.accuracy.non_digits import score_non_digit_sets
from scripts.cli import OneLineParser, positive_int, print_report
from train.calibrate import expected_calibration_error
from train.renderers.user_style import STYLES, pick, render_bytes


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


def judge(model, device, calibration, inputs: list[torch.Tensor], targets: list[int], n: int) -> dict:
    """Accuracy and flagged share over ``n`` pictures (those without an input were refused); with a
    calibration, the expected calibration error of the answered ones before and after its temperature."""
    if not inputs:
        return {"accuracy": 0.0}
    batches, y = [b.to(device) for b in torch.stack(inputs).split(500)], torch.tensor(targets)
    with torch.inference_mode():
        answers = [answer(model, batch, calibration) for batch in batches]
    probabilities = torch.cat([a.probabilities.cpu() for a in answers])
    result = {"accuracy": int((probabilities.argmax(1) == y).sum()) / n}
    if answers[0].is_digit is not None:
        result["flagged"] = sum(int((~a.is_digit).sum()) for a in answers) / n
    if calibration is not None:
        with torch.inference_mode():
            untempered = torch.cat([answer(model, batch, None).probabilities.cpu() for batch in batches])
        result["ece_before"] = round(expected_calibration_error(untempered, y), 5)
        result["ece_after"] = round(expected_calibration_error(probabilities, y), 5)
    return result


def score_style(
    model, device, images, labels, style: str, n: int, seed: int, plain: bool = False, calibration=None
) -> dict:
    """Accuracy, flags, calibration error and per-image cost on ``n`` renders of ``style``; with ``plain``,
    also :func:`plain_recipe`'s."""
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
    row = {"n": n, **score_recipe(model, device, pictures, targets, to_model_input, calibration)}
    row["decode_us"] = round(decode_s / n * 1e6, 1)
    if plain:
        row["plain"] = score_recipe(model, device, pictures, targets, plain_recipe, calibration)
    return row


def score_recipe(model, device, pictures: list, targets: list[int], recipe, calibration=None) -> dict:
    """Accuracy (and flags, calibration error: :func:`judge`) of ``model`` on ``pictures`` preprocessed by
    ``recipe``; refused pictures count as wrong."""
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
    return {
        **judge(model, device, calibration, inputs, kept, len(targets)),
        "refused": refused,
        "preprocess_us": round(preprocess_s / len(targets) * 1e6, 1),
    }


def score_mnist(model, device, images, labels, calibration=None) -> dict:
    """Accuracy, flags and calibration error on the plain MNIST test digits through the same preprocessing."""
    t0 = time.perf_counter()
    inputs = [to_model_input(Image.fromarray(digit)) for digit in images]
    preprocess_s = time.perf_counter() - t0
    return {
        "n": len(labels),
        **judge(model, device, calibration, inputs, [int(v) for v in labels], len(labels)),
        "preprocess_us": round(preprocess_s / len(labels) * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m scripts.accuracy.styles",
        description="Offline accuracy, not-a-digit flags and calibration error per user style, and non-digit sets.",
    )
    parser.add_argument("--checkpoint", default="mnist_cnn.pth", help="state_dict to score (default: %(default)s)")
    parser.add_argument("--calibration", help="default: the checkpoint's (<stem>.calibration.pt), if there is one")
    parser.add_argument("--per-style", type=positive_int, default=500, help="renders per style (default: %(default)s)")
    parser.add_argument(
        "--styles", nargs="+", default=list(STYLES), choices=list(STYLES), help="styles to score (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="picks the digits and the randomness (default: 0)")
    parser.add_argument("--mnist", action="store_true", help="also score all 10,000 plain MNIST test digits")
    parser.add_argument("--plain", action="store_true", help="also score each style through the textbook recipe")
    parser.add_argument("--non-digits", action="store_true", help="also score Fashion-MNIST test and non_digits")
    parser.add_argument(
        "--per-kind", type=positive_int, default=300, help="pictures per non-digit kind (default: %(default)s)"
    )
    parser.add_argument("--fashion", type=positive_int, default=10000, help="Fashion-MNIST test items (default: all)")
    parser.add_argument(
        "--fashion-dir", help="Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, else Debian's, else download)"
    )
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
    calibration_file = Path(args.calibration) if args.calibration else calibration_path(args.checkpoint)
    try:
        model = load_for_inference(args.checkpoint, device)
        calibration = load_calibration(calibration_file)
    except (CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if calibration is None:
        print(f"note: no calibration at {calibration_file}: plain softmax, no not-a-digit check", file=sys.stderr)
    from train.data import load_mnist_or_report  # torchvision: imported only when needed

    if (splits := load_mnist_or_report(args.data_dir)) is None:
        return 1
    test = splits[1]
    source = splits[0] if args.split == "train" else test
    images, labels = source.images.numpy(), source.labels.numpy()
    n = min(args.per_style, len(labels))
    report = {
        "checkpoint": str(args.checkpoint),
        "calibration": str(calibration_file) if calibration is not None else None,
        "temperature": calibration.temperature if calibration is not None else None,
        "split": args.split,
        "per_style": n,
        "seed": args.seed,
        "styles": {},
    }
    for style in args.styles:
        row = score_style(model, device, images, labels, style, n, args.seed, args.plain, calibration)
        report["styles"][style] = row
        print(f"{style}: {row}", file=sys.stderr)
    accuracies = [s["accuracy"] for s in report["styles"].values()]
    report["overall_accuracy"] = float(np.mean(accuracies))
    report["min_style_accuracy"] = float(np.min(accuracies))
    if calibration is not None and calibration.check is not None:
        report["max_style_flagged"] = max(s.get("flagged", 0.0) for s in report["styles"].values())
    if args.mnist:
        report["mnist_test"] = score_mnist(model, device, test.images.numpy(), test.labels.numpy(), calibration)
        print(f"mnist_test: {report['mnist_test']}", file=sys.stderr)
    if args.non_digits:
        report["non_digits"] = score_non_digit_sets(
            model, device, calibration, args.fashion_dir, args.fashion, args.per_kind, args.seed
        )
    print_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
