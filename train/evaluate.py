"""Recompute metrics.json and the figures from a saved checkpoint, without training.

Test digits go through ``handler.preprocess.to_model_input`` one PIL image at a
time, exactly as the TorchServe handler sees them, so this accuracy is the
served accuracy.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.preprocess import to_model_input
from model.inference import load_for_inference
from scripts.cli import CliError, OneLineParser, check_writable_dir, fail
from train.data import DEFAULT_ROOT, DataError, Split, load_mnist
from train.engine import pick_device, predict_logits
from train.reports import test_metrics, write_reports


def served_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) digits -> (N, 1, 28, 28) inputs via the serving preprocessing."""
    return torch.stack([to_model_input(Image.fromarray(a, mode="L")) for a in images.numpy()])


def evaluate_model(model: torch.nn.Module, test: Split) -> tuple[dict, np.ndarray]:
    """(test metrics, softmax probabilities) of ``model`` on the served inputs of ``test``."""
    probs = torch.softmax(predict_logits(model, served_inputs(test.images.cpu())), dim=1).numpy()
    return test_metrics(test.labels.cpu().numpy(), probs), probs


def report(model: torch.nn.Module, test: Split, reports_dir: Path, extra: dict) -> dict:
    """Evaluate, write metrics.json (``extra`` merged in) and the figures; return the metrics."""
    metrics, probs = evaluate_model(model, test)
    metrics = {**extra, **metrics}
    write_reports(reports_dir, metrics, test.images.cpu().numpy(), test.labels.cpu().numpy(), probs)
    return metrics


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="mnist_cnn.pth", help="state_dict to evaluate (default: %(default)s)")
    parser.add_argument(
        "--reports-dir", default="reports", help="where metrics.json and figures go (default: %(default)s)"
    )
    parser.add_argument("--data-dir", help="local copy of the MNIST IDX files (default: $MNIST_DIR, else download)")
    parser.add_argument(
        "--data-root", default=str(DEFAULT_ROOT), help="unpacked data set folder (default: %(default)s)"
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: %(default)s")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reports_dir = Path(args.reports_dir)
    try:
        device = pick_device(args.device)
        check_writable_dir(reports_dir, "reports dir")
        model = load_for_inference(args.checkpoint, device)
        _, test = load_mnist(args.data_dir, args.data_root)
    except (CliError, DataError, ValueError) as err:
        return fail(str(err))
    # Keep the training history of an earlier run so curves.png survives a re-evaluation.
    previous = {}
    metrics_path = reports_dir / "metrics.json"
    if metrics_path.is_file():
        try:
            previous = json.loads(metrics_path.read_text())
        except (OSError, ValueError):
            previous = {}
    extra = {k: previous[k] for k in ("history", "wall_time_s", "seed", "options") if k in previous}
    extra.update(checkpoint=str(args.checkpoint), device=str(device), torch_version=torch.__version__)
    metrics = report(model, test, reports_dir, extra)
    print(f"test accuracy {metrics['test_accuracy']:.4%} ({metrics['num_test']} images), reports in {reports_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
