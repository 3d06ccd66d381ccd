"""Accuracy through a live TorchServe: MNIST test digits as PNG, and user-style pictures.

    make serve && make eval-server       # or: python -m scripts.eval_server --help

(a) sends the 10,000 MNIST test digits as PNG files and compares the server's answers with
the offline evaluation of the same checkpoint (they must agree); (b) sends user-style renders
of MNIST test digits (photos of paper, canvas drawings, scans: ``scripts.user_style``) and
reports their accuracy. Prints and writes JSON.
"""

import io
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from tqdm import tqdm

from model.inference import CheckpointError, load_for_inference
from scripts.serving.process import Server
from train.cli import OneLineParser, positive_int
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
    """Accuracy over all requests: a 4xx/5xx answer counts as wrong."""
    digits = np.array([answer.get("digit", -1) if status == 200 else -1 for status, answer in results])
    errors = [answer.get("error", "") for status, answer in results if status != 200]
    return {
        "count": len(results),
        "accuracy": float((digits == labels).mean()),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "digits": digits,
    }


def eval_mnist(client: Client, test, checkpoint: Path | None, limit: int, concurrency: int) -> dict:
    images, labels = test.images[:limit].numpy(), test.labels[:limit].numpy()
    results, rate = send_all(client, [(png(a), "image/png") for a in images], concurrency, "MNIST as PNG")
    served = summary(results, labels)
    report = {"requests_per_s": round(rate, 1), **{k: v for k, v in served.items() if k != "digits"}}
    if checkpoint is not None:
        from train.evaluate import evaluate_model

        model = load_for_inference(checkpoint)
        subset = type(test)(test.images[:limit], test.labels[:limit])
        metrics, probabilities = evaluate_model(model, subset)
        offline = probabilities.argmax(axis=1)
        served_probabilities = np.array([a["probabilities"] if s == 200 else [np.nan] * 10 for s, a in results])
        report["offline_accuracy"] = float((offline == labels).mean())
        report["disagreements"] = int((offline != served["digits"]).sum())
        report["max_probability_difference"] = float(np.nanmax(np.abs(served_probabilities - probabilities)))
        report["checkpoint"] = str(checkpoint)
    return report


def eval_user_style(client: Client, test, per_style: int, concurrency: int, seed: int) -> dict:
    """Renders of test digits in every user style (the same files as ``scripts.eval_styles``)."""
    from scripts.user_style import STYLES, pick, render_bytes

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
    return {
        "requests_per_s": round(rate, 1),
        **{k: v for k, v in overall.items() if k != "digits"},
        "accuracy_by_style": by_style,
    }


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m scripts.eval_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("logs"), help="the running server's state (make serve)")
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_cnn.pth"), help="for the offline comparison")
    parser.add_argument("--data-dir", help="MNIST IDX files (default: $MNIST_DIR, else download)")
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT), help="unpacked data set folder")
    parser.add_argument("--limit", type=positive_int, default=10_000, help="MNIST test digits to send (default: all)")
    parser.add_argument("--per-style", type=int, default=400, help="user-style pictures per style (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the user-style renders")
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
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.per_style:
        report["user_style"] = eval_user_style(client, test, args.per_style, args.concurrency, args.seed)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
