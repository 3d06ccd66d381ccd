"""Accuracy and not-a-digit flags through a live TorchServe: MNIST test digits, user-style pictures, non-digits.

    make serve && make eval-server       # or: python -m scripts.accuracy.served --help

(a) sends the 10,000 MNIST test digits as PNG files and compares the server's answers with
the offline evaluation of the same checkpoint and calibration (they must agree); (b) sends
user-style renders of MNIST test digits (photos of paper, canvas drawings, scans:
``train.renderers.user_style``) and reports their accuracy and flagged share per style; (c) sends
pictures that are not digits (Fashion-MNIST's test split, ``train.renderers.non_digits``) and reports
per set how many are flagged ``"is_digit": false`` and how many refused. Prints and writes JSON.
"""

import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import torch
from PIL import Image
from tqdm import tqdm

from model.inference import CheckpointError, load_for_inference
from scripts.cli import OneLineParser, non_negative_int, positive_int, print_report
from scripts.serving.process import Server
from train.data import DEFAULT_ROOT, load_mnist_or_report


class Client:
    """Thread-safe poster of encoded images to the inference API, one session per thread."""

    def __init__(self, server: Server):
        self.url = server.predictions_url
        self.headers = server.auth("inference")
        self.local = threading.local()

    def predict(self, data: bytes, content_type: str) -> tuple[int, dict]:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        response = session.post(self.url, data=data, headers={**self.headers, "Content-Type": content_type}, timeout=60)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"error": response.text}


def send_all(client: Client, bodies, concurrency: int, desc: str) -> tuple[list, float]:
    """[(status, answer)] in order for (bytes, content type) pairs, and the requests per second."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(
            tqdm(
                pool.map(lambda b: client.predict(*b), bodies), total=len(bodies), desc=desc, leave=False, disable=None
            )
        )
    return results, len(results) / (time.perf_counter() - start)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def summary(results: list, labels: np.ndarray) -> dict:
    """Accuracy over all requests (a 4xx/5xx answer counts as wrong) and the share flagged not a digit."""
    digits = np.array([answer.get("digit", -1) if status == 200 else -1 for status, answer in results])
    errors = [answer.get("error", "") for status, answer in results if status != 200]
    return {
        "count": len(results),
        "accuracy": float((digits == labels).mean()),
        "flagged": flagged_share(results),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "digits": digits,
    }


def flags(results: list) -> np.ndarray:
    """Per request: True when the answer says ``"is_digit": false`` (a 200 without the field: False)."""
    return np.array([status == 200 and answer.get("is_digit") is False for status, answer in results], dtype=bool)


def flagged_share(results: list) -> float | None:
    """The share of requests answered ``"is_digit": false``; None when the server has no not-a-digit check."""
    if not any(status == 200 and "is_digit" in answer for status, answer in results):
        return None
    return round(float(flags(results).mean()), 4)


def offline_answers(checkpoint: Path, images) -> tuple[np.ndarray, np.ndarray | None]:
    """What the handler computes for MNIST digits with the checkpoint and its calibration: (probabilities,
    not-a-digit flags or None)."""
    from model.calibration import answer, calibration_path, load_calibration
    from train.evaluate import served_inputs

    model = load_for_inference(checkpoint)
    calibration = load_calibration(calibration_path(checkpoint))
    with torch.inference_mode():
        inputs = served_inputs(images).to(memory_format=torch.channels_last)
        answers = [answer(model, batch, calibration) for batch in inputs.split(1000)]
    probabilities = torch.cat([a.probabilities for a in answers]).numpy()
    if answers[0].is_digit is None:
        return probabilities, None
    return probabilities, ~torch.cat([a.is_digit for a in answers]).numpy()


def eval_mnist(client: Client, test, checkpoint: Path | None, limit: int, concurrency: int) -> dict:
    images, labels = test.images[:limit].numpy(), test.labels[:limit].numpy()
    results, rate = send_all(client, [(png(a), "image/png") for a in images], concurrency, "MNIST as PNG")
    served = summary(results, labels)
    report = {"requests_per_s": round(rate, 1), **{k: v for k, v in served.items() if k != "digits"}}
    if checkpoint is not None:
        probabilities, offline_flags = offline_answers(checkpoint, test.images[:limit])
        offline = probabilities.argmax(axis=1)
        served_probabilities = np.array([a["probabilities"] if s == 200 else [np.nan] * 10 for s, a in results])
        report["offline_accuracy"] = float((offline == labels).mean())
        report["disagreements"] = int((offline != served["digits"]).sum())
        report["max_probability_difference"] = float(np.nanmax(np.abs(served_probabilities - probabilities)))
        if offline_flags is not None:
            report["offline_flagged"] = round(float(offline_flags.mean()), 4)
            report["flag_disagreements"] = int((offline_flags != flags(results)).sum())
        report["checkpoint"] = str(checkpoint)
    return report


def eval_user_style(client: Client, test, per_style: int, concurrency: int, seed: int) -> dict:
    """Renders of test digits in every user style (the same files as ``scripts.accuracy.styles``)."""
    from train.renderers.user_style import STYLES, pick, render_bytes

    images, labels = test.images.numpy(), test.labels.numpy()
    bodies, targets, styles = [], [], []
    for style in STYLES:
        for index in pick(len(labels), per_style, seed):
            data, ext = render_bytes(images[index], style, seed * 1_000_003 + int(index))
            bodies.append((data, "image/jpeg" if ext == "jpg" else f"image/{ext}"))
            targets.append(int(labels[index]))
            styles.append(style)
    targets, styles = np.array(targets), np.array(styles)
    results, rate = send_all(client, bodies, concurrency, "user-style pictures")
    overall = summary(results, targets)
    by_style = {
        style: round(float((overall["digits"][styles == style] == targets[styles == style]).mean()), 4)
        for style in STYLES
    }
    report = {
        "requests_per_s": round(rate, 1),
        **{k: v for k, v in overall.items() if k != "digits"},
        "accuracy_by_style": by_style,
    }
    if overall["flagged"] is not None:
        flagged = flags(results)
        report["flagged_by_style"] = {style: round(float(flagged[styles == style].mean()), 4) for style in STYLES}
    return report


def eval_non_digits(client: Client, sets: dict, concurrency: int) -> dict:
    """Per set of non-digit pictures: the shares flagged ``"is_digit": false``, refused (400), or either."""
    report = {}
    for name, pictures in sets.items():
        results, _ = send_all(client, pictures, concurrency, name)
        flagged = flags(results)
        refused = np.array([status == 400 for status, _ in results])
        report[name] = {
            "n": len(results),
            "refused": int(refused.sum()),
            "flagged": int(flagged.sum()),
            "flagged_share": round(float(flagged.mean()), 4),
            "flagged_or_refused_share": round(float((flagged | refused).mean()), 4),
            "other_errors": int(sum(status not in (200, 400) for status, _ in results)),
        }
    return report


def non_digit_bodies(fashion_dir, fashion_limit: int, per_kind: int, seed: int) -> dict:
    """{name: [(bytes, content type)]}: Fashion-MNIST test items as PNG (when installed) and train.renderers.non_digits,
    the same pictures as ``python -m scripts.accuracy.styles --non-digits``."""
    from train.fashion import try_load_fashion
    from train.renderers import non_digits

    sets = {}
    if fashion_limit:
        images, source = try_load_fashion("test", fashion_dir)
        if images is None:
            print(f"note: {source}: its row is left out", file=sys.stderr)
        else:
            sets["fashion_mnist_test"] = [(png(a), "image/png") for a in images[:fashion_limit]]
    for kind in non_digits.KINDS if per_kind else ():
        files = [non_digits.render_bytes(kind, seed * 1_000_003 + n) for n in range(per_kind)]
        sets[kind] = [(data, "image/jpeg" if ext == "jpg" else f"image/{ext}") for data, ext in files]
    from scripts.accuracy import photos

    if per_kind and photos.available():
        sets["photos"] = [(data, "image/jpeg") for _, data in photos.photo_files()]
    return sets


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m scripts.accuracy.served", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("logs"), help="the running server's state (make serve)")
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="for the offline comparison")
    parser.add_argument("--data-dir", help="MNIST IDX files (default: $MNIST_DIR, else download)")
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT), help="unpacked data set folder")
    parser.add_argument("--limit", type=positive_int, default=10_000, help="MNIST test digits to send (default: all)")
    parser.add_argument("--per-style", type=int, default=400, help="user-style pictures per style (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user-style and non-digit renders")
    parser.add_argument(
        "--fashion", type=non_negative_int, default=10_000, help="Fashion-MNIST test items to send (0: none)"
    )
    parser.add_argument(
        "--fashion-dir", help="Fashion-MNIST IDX files (default: $FASHION_MNIST_DIR, else Debian's, else download)"
    )
    parser.add_argument(
        "--per-kind", type=non_negative_int, default=300, help="train.renderers.non_digits pictures per kind (0: none)"
    )
    parser.add_argument("--concurrency", type=positive_int, default=8, help="requests in flight")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)

    server = Server.load(args.run_dir)
    if server is None:
        print(f"error: no TorchServe running for {args.run_dir}: run `make serve` first", file=sys.stderr)
        return 1
    if (splits := load_mnist_or_report(args.data_dir, args.data_root)) is None:
        return 1
    test = splits[1]
    checkpoint = args.checkpoint if args.checkpoint.is_file() else None
    client = Client(server)
    try:
        report = {"mnist_png": eval_mnist(client, test, checkpoint, args.limit, args.concurrency)}
    except (CheckpointError, ValueError) as error:  # ValueError: a damaged calibration file
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.per_style:
        report["user_style"] = eval_user_style(client, test, args.per_style, args.concurrency, args.seed)
    if sets := non_digit_bodies(args.fashion_dir, args.fashion, args.per_kind, args.seed):
        report["non_digits"] = eval_non_digits(client, sets, args.concurrency)
    print_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
