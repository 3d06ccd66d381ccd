"""Fit the temperature and the not-a-digit check of a checkpoint: ``python -m train.calibrate`` (``make calibrate``).

On MNIST's training split only. Digits the CNN trained on (all but the last ``--holdout``) give
the class statistics and the digit side of the check's classifier; the held-out digits, as they
are, in the user styles and as thick or low-resolution variants, give the temperature and the
threshold, which flags at most ``--target`` of each held-out set. The non-digit side is
Fashion-MNIST's training split, crops of photographs (``train.photographs``) and, on request
(``--glyphs``, ``--per-kind``), letters and symbols and rendered scenes, textures, printed text,
shapes and scribbles (``train.calibration_sets``).
Writes ``<checkpoint stem>.calibration.pt`` next to the checkpoint, with the digest of what it was
fitted from (``train.digest``), and ``calibration.json`` in the reports dir.
"""

import json
import os
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
from scripts.cli import (
    CliError,
    OneLineParser,
    check_writable_dir,
    exit_now,
    fail,
    fraction,
    non_negative_int,
    positive_int,
)
from train.calibration_cache import start_sets
from train.calibration_sets import BLURRED, Workers, set_jobs
from train.data import DEFAULT_ROOT, DataError, load_mnist
from train.digest import fit_inputs
from train.fashion import try_load_fashion
from train.fitting import (  # noqa: F401 (re-exported: the fit's numbers, with the command that runs them)
    class_statistics,
    expected_calibration_error,
    feature_starts,
    fit_classifier,
    fit_temperature,
)
from train.photographs import find_photographs

FASHION_SHARE = 0.75  # of the non-digit side's weight in the fit; the photographs and rendered kinds share the rest


@torch.inference_mode()
def forward_all(model, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and :func:`forward_with_features`'s features of many inputs, 250 at a time (activations under
    glibc's mmap threshold, so reused rather than page-faulted in: see ``train.allocator``)."""
    if len(inputs) == 0:
        return torch.empty(0, 10), torch.empty(0, 320)
    parts = [forward_with_features(model, batch) for batch in inputs.split(250)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def calibrate(model, images: np.ndarray, labels: np.ndarray, fashion: np.ndarray | None, args, log=print, photos=None):
    """Fit on the training split (its last ``args.holdout`` held out); return (calibration, report).

    ``photos``: (folder, digest) of the photographs the check learns crops of (:func:`set_jobs`).
    """
    seconds, clock = {}, time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(seconds.get(stage, 0.0) + now - clock, 2)
        clock = now

    jobs, names = set_jobs(images, labels, fashion, args, photos)
    held, others = names["held"], names["others"]
    cache = getattr(args, "cache_dir", None)
    with Workers(getattr(args, "workers", None)) as pool:
        # The held-out sets are made while this process fits the check's classifier, which uses one core.
        fitting = start_sets([job for job in jobs if job.set_name not in held], cache, pool, log)
        holding = start_sets([job for job in jobs if job.set_name in held], cache, pool, log)
        sets = fitting()
        lap("pictures")
        threads = torch.get_num_threads()
        if pool.busy():  # the workers have the cores
            torch.set_num_threads(1)
        try:
            outputs = {name: forward_all(model, x) for name, (x, _) in sets.items()}
            lap("forward")
            parts = _fit_check(model, outputs, sets, names, args, log) if fashion is not None else None
            lap("classifier")
        finally:
            torch.set_num_threads(threads)
        made = holding()
        lap("pictures")
    sets.update(made)
    outputs.update({name: forward_all(model, x) for name, (x, _) in made.items()})
    lap("forward")
    temperature, report = _fit_temperature(outputs, sets, names, args)
    lap("temperature")
    if parts is None:
        report["seconds"] = seconds
        return Calibration(temperature, None), report

    unfinished = DigitCheck(*parts, threshold=float("inf"))
    scores = {name: torch.from_numpy(unfinished.score(*reversed(outputs[name]))) for name in [*held, *others]}
    threshold = max(float(torch.quantile(scores[name], 1.0 - args.target)) for name in held)
    check = DigitCheck(*parts, threshold=threshold)
    lap("threshold")
    report["check"] = {
        "threshold": threshold,
        "target": args.target,
        "fashion_train_used": len(sets["fashion"][1]),
        "fashion_train_refused_by_preprocessing": len(fashion) - len(sets["fashion"][1]),
        "held_out_flagged": {name: float((scores[name] > threshold).float().mean()) for name in held},
        # The fitting sets, so optimistic: how well the classifier separates what it saw.
        "non_digits_fitted_flagged": {name: float((scores[name] > threshold).float().mean()) for name in others},
        "non_digits_fitted": {name: len(sets[name][1]) for name in others},
    }
    report["seconds"] = seconds
    return Calibration(temperature, check), report


def _fit_check(model, outputs: dict, sets: dict, names: dict, args, log) -> tuple:
    """:class:`DigitCheck`'s arguments but the threshold: the class statistics and the classifier,
    fitted on the fit sets and the non-digits."""
    starts = feature_starts(model)
    whitening, centres = class_statistics(outputs["fit digits"][1].numpy(), sets["fit digits"][1].numpy(), starts)

    def columns(name: str) -> np.ndarray:
        logits, features = outputs[name]
        return describe(features.numpy(), logits.numpy(), whitening, centres, starts)

    others = names["others"]
    shares = [FASHION_SHARE if name == "fashion" else (1 - FASHION_SHARE) / (len(others) - 1) for name in others]
    log(
        f"fitting the not-a-digit check on {sum(len(sets[n][1]) for n in names['fit'])} digits and "
        f"{sum(len(sets[n][1]) for n in others)} non-digits"
    )
    weights = fit_classifier(
        [columns(n) for n in names["fit"]], [columns(n) for n in others], args.seed, args.epochs, shares
    )
    return (whitening, centres, starts, *weights)


def _fit_temperature(outputs: dict, sets: dict, names: dict, args) -> tuple[float, dict]:
    """The temperature, fitted on the held-out digits and user styles, and the report's first entries."""
    held = names["held"]
    styles = [name for name in held if name.startswith("style ")]
    logits = {name: outputs[name][0] for name in held}
    truth = {name: sets[name][1] for name in held}
    logits["user_styles"] = torch.cat([logits[name] for name in styles])
    truth["user_styles"] = torch.cat([truth[name] for name in styles])
    temperature = fit_temperature([logits["digits"], logits["user_styles"]], [truth["digits"], truth["user_styles"]])
    report = {
        "holdout": args.holdout,
        "temperature": temperature,
        "digits": {
            "fit": {name.removeprefix("fit "): len(sets[name][1]) for name in names["fit"]},
            "held_out": {name: len(sets[name][1]) for name in held},
        },
        "held_out_ece": {
            name: {
                "before": expected_calibration_error(torch.softmax(logits[name], 1), truth[name]),
                "after": expected_calibration_error(torch.softmax(logits[name] / temperature, 1), truth[name]),
            }
            for name in ("digits", "user_styles", "variants")
        },
    }
    return temperature, report


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m train.calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="mnist_cnn.pth", help="state_dict to calibrate (default: %(default)s)")
    p.add_argument("--output", help="default: <checkpoint stem>.calibration.pt next to the checkpoint")
    p.add_argument("--holdout", type=positive_int, default=5000, help="as python -m train's (default: %(default)s)")
    # How many pictures of each kind the fit uses: (flag, type, default, what they are).
    counts = (
        ("--fit-digits", positive_int, 10000, "trained-on digits to fit on"),
        ("--fit-per-style", positive_int, 300, "renders of trained-on digits per user style to fit on"),
        ("--fit-blurred", positive_int, 1500, f"renders per blurred low-resolution style ({', '.join(BLURRED)})"),
        ("--renders", positive_int, 4000, "thick or low-resolution variants to fit on, and to hold out"),
        ("--per-style", positive_int, 500, "held-out renders per user style"),
        ("--fashion", positive_int, 20000, "Fashion-MNIST training items to fit on"),
        ("--photo-crops", non_negative_int, 3000, "crops of photographs to fit on as non-digits"),
        (
            "--per-kind",
            non_negative_int,
            0,
            "rendered scenes, textures, text, shapes and scribbles each, as non-digits",
        ),
        ("--glyphs", non_negative_int, 0, "rendered letters and symbols to fit on as non-digits"),
    )
    for flag, kind, default, what in counts:
        p.add_argument(flag, type=kind, default=default, help=f"{what} (default: %(default)s)")
    p.add_argument("--epochs", type=positive_int, default=40, help="of the check's classifier (default: %(default)s)")
    p.add_argument(
        "--target", type=fraction, default=0.005, help="most flagged of each held-out set (default: %(default)s)"
    )
    p.add_argument(
        "--fashion-dir", help="Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, else Debian's, else download)"
    )
    p.add_argument(
        "--photos-dir", help="photographs to crop (default: $PHOTOS_DIR, else Debian's mate-backgrounds nature folder)"
    )
    p.add_argument("--data-dir", help="local copy of the MNIST IDX files (default: $MNIST_DIR, else download)")
    p.add_argument("--data-root", default=str(DEFAULT_ROOT), help="unpacked data sets' folder (default: %(default)s)")
    p.add_argument(
        "--cache-dir",
        default=str(DEFAULT_ROOT / "cache"),
        help="keeps the pictures' model inputs by content for the next fit; '' for none (default: %(default)s)",
    )
    p.add_argument("--workers", type=positive_int, help="processes making the pictures (default: one per core)")
    p.add_argument("--reports-dir", default="reports", help="where calibration.json goes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    photos, found = find_photographs(args.photos_dir)
    if photos is None and (args.photos_dir or os.environ.get("PHOTOS_DIR")):
        return fail(found)
    output = Path(args.output) if args.output else calibration_path(args.checkpoint)
    try:
        check_writable_dir(Path(args.reports_dir), "reports dir")
        check_writable_dir(output.parent, "folder of the calibration")
        model = load_for_inference(args.checkpoint, "cpu")
        inputs = fit_inputs(Path(args.checkpoint))
        train, _ = load_mnist(args.data_dir, args.data_root)
    except (CliError, CheckpointError, DataError, ValueError) as err:
        return fail(str(err))
    if args.holdout >= len(train):
        return fail(f"--holdout must be below {len(train)}")
    fashion, source = try_load_fashion("train", args.fashion_dir, args.data_root)
    if fashion is None:
        print(f"note: {source}: calibrating the confidence only, no not-a-digit check", file=sys.stderr)
    else:
        fashion = fashion[: args.fashion]
        if photos is None and args.photo_crops:
            print(f"note: {found}: the check learns no photographs", file=sys.stderr)
    cropped = (photos, found) if photos is not None and fashion is not None else None
    torch.manual_seed(args.seed)
    calibration, report = calibrate(model, train.images.numpy(), train.labels.numpy(), fashion, args, photos=cropped)
    report["checkpoint"] = str(args.checkpoint)
    report["fashion_source"] = source if fashion is not None else None
    report["photos_source"] = str(photos) if cropped and args.photo_crops else None
    report["inputs"] = inputs
    report["seconds"]["total"] = round(time.perf_counter() - start, 2)
    save_calibration(output, calibration, report)
    (Path(args.reports_dir) / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    check = report.get("check")
    flagged = ", ".join(f"{k} {v:.2%}" for k, v in check["held_out_flagged"].items()) if check else "no check"
    print(
        f"temperature {calibration.temperature:.3f}; held-out digits flagged: {flagged}; written to {output} "
        f"in {report['seconds']['total']:.0f}s"
    )
    return 0


if __name__ == "__main__":
    exit_now(main())
