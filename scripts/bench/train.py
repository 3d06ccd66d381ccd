"""Time the straightforward training pipeline against the whole ``make train``, in one run on one machine.

Straightforward (the product spec as usually written): per-sample PIL
RandomRotation(10) + RandomAffine(translate=0.1) in a DataLoader, batch 64,
Adam 1e-3, fp32, evaluated on the test set after every epoch. Ours: what a
user waits for, ``make train`` itself (training, the evaluation figures and the
calibration, with an empty picture cache) into a temporary folder, with each
stage's seconds from its reports, at its default epochs unless ``--epochs`` says.
Both train the same MnistCNN; the straightforward pipeline runs 10 epochs.
Writes a JSON summary and a plot; prints the JSON.
"""

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import transforms  # noqa: E402

from model import MNIST_MEAN, MNIST_STD, MnistCNN  # noqa: E402
from scripts.cli import OneLineParser, positive_int  # noqa: E402
from train.data import DEFAULT_ROOT, load_mnist_or_report  # noqa: E402
from train.options import DEFAULTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOLDOUT = DEFAULTS["holdout"]


class PILDigits(Dataset):
    """MNIST as PIL images through a per-sample transform, like torchvision.datasets.MNIST."""

    def __init__(self, split, transform):
        self.images, self.labels, self.transform = split.images.numpy(), split.labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


def run_baseline(train_split, test_split, epochs: int, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    to_tensor = [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    augment = [transforms.RandomRotation(10), transforms.RandomAffine(0, translate=(0.1, 0.1))]
    train_loader = DataLoader(PILDigits(train_split, transforms.Compose(augment + to_tensor)), 64, shuffle=True)
    test_loader = DataLoader(PILDigits(test_split, transforms.Compose(to_tensor)), 1000)
    model = MnistCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        history.append({"epoch": epoch, "test_acc": correct / len(test_split), "wall_s": time.perf_counter() - start})
        print(f"baseline epoch {epoch}: test acc {history[-1]['test_acc']:.4f} at {history[-1]['wall_s']:.0f}s")
    return history


def run_ours(epochs: int | None, seed: int, extra: list[str], data: list[str]) -> dict:
    """``make train`` in a temporary folder: its wall time, per-epoch history and each stage's seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        reports = f"{tmp}/reports"
        args = ["--seed", str(seed), "--reports-dir", reports, *data, *extra]
        calibrate = ["--reports-dir", reports, "--cache-dir", "", *data]
        command = ["make", "--no-print-directory", "train", f"CHECKPOINT={tmp}/mnist_cnn.pth"]
        command += [f"EPOCHS={epochs}"] if epochs else []
        command += [f"ARGS={shlex.join(args)}", f"CAL_ARGS={shlex.join(calibrate)}"]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"make train failed (exit {result.returncode})")
        metrics = json.loads(Path(reports, "metrics.json").read_text())
        calibration = json.loads(Path(reports, "calibration.json").read_text())
    elapsed, history = 0.0, []
    for h in metrics["history"]:
        elapsed += h["epoch_time_s"]
        history.append({"epoch": h["epoch"], "test_acc": h["test_acc"], "wall_s": elapsed})
    cal = calibration["seconds"]
    stages = {
        "training epochs": metrics["seconds"]["epochs"],
        "evaluation and figures": metrics["seconds"]["evaluation_and_figures"],
        "calibration: making the pictures": cal["pictures"],
        "calibration: forward passes and fit": cal["total"] - cal["pictures"],
    }
    stages["start-up and data loading"] = wall - sum(stages.values())
    return {
        "wall_s": wall,
        "final_test_acc": metrics["test_accuracy"],
        "epochs": len(history),
        "examples_trained": sum(h["examples"] for h in metrics["history"]),
        "history": history,
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "stages_share": {k: round(v / wall, 4) for k, v in stages.items()},
    }


def time_to(history: list[dict], accuracy: float) -> float | None:
    """Wall time at the first epoch whose test accuracy reaches ``accuracy``."""
    return next((h["wall_s"] for h in history if h["test_acc"] >= accuracy), None)


def summarize(baseline: list[dict], ours: dict) -> dict:
    target = baseline[-1]["test_acc"]
    base_t, ours_t = time_to(baseline, target), time_to(ours["history"], target)
    return {
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "baseline": {
            "pipeline": "per-sample PIL RandomRotation(10)+RandomAffine(translate=0.1), DataLoader batch 64, "
            "Adam 1e-3, fp32",
            "epochs": len(baseline),
            "wall_s": baseline[-1]["wall_s"],
            "per_epoch_s": baseline[-1]["wall_s"] / len(baseline),
            "final_test_acc": target,
            "history": baseline,
        },
        "ours": {"pipeline": "make train (training, evaluation figures, calibration)", **ours},
        "wall_time_ratio": ours["wall_s"] / baseline[-1]["wall_s"],
        "training_epochs_ratio": ours["stages_s"]["training epochs"] / baseline[-1]["wall_s"],
        "same_accuracy": {
            "target_test_acc": target,
            "baseline_s": base_t,
            "ours_training_s": ours_t,
            "ratio": ours_t / base_t if ours_t is not None else None,
        },
    }


def plot(summary: dict, path: Path) -> None:
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    for name in ("baseline", "ours"):
        hist = summary[name]["history"]
        curves.plot([0] + [h["wall_s"] for h in hist], [0.0] + [h["test_acc"] for h in hist], "o-", label=name)
    curves.axhline(summary["same_accuracy"]["target_test_acc"], ls="--", c="gray", lw=1, label="baseline final")
    curves.set_ylim(0.97, 1.0)
    curves.set_xlabel("wall time of the training epochs (s)")
    curves.set_ylabel("test accuracy")
    curves.grid(alpha=0.3)
    curves.legend(loc="lower right")
    left = 0.0
    for stage, seconds in summary["ours"]["stages_s"].items():
        bars.barh("make train", seconds, left=left, label=stage)
        left += seconds
    bars.barh("straightforward", summary["baseline"]["wall_s"], color="gray")
    bars.set_xlabel("wall time (s)")
    bars.legend(fontsize=8, loc="upper right")
    fig.suptitle(
        f"MNIST, {summary['ours']['epochs']} epochs against {summary['baseline']['epochs']}: "
        f"the whole make train takes {summary['wall_time_ratio']:.2f}x "
        "the straightforward pipeline's time"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m scripts.bench.train", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, help="make train's epochs (default: its own)")
    parser.add_argument(
        "--baseline-epochs", type=positive_int, default=10, help="the straightforward pipeline's (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument("--data-dir", help="local copy of the MNIST IDX files (default: $MNIST_DIR, else download)")
    parser.add_argument("--data-root", default=str(DEFAULT_ROOT), help="default: %(default)s")
    parser.add_argument("--subset", type=positive_int, help="first N training images only (smoke runs)")
    parser.add_argument("--json", default="reports/bench_train.json", help="default: %(default)s")
    parser.add_argument("--plot", default="reports/bench_train.png", help="default: %(default)s")
    parser.add_argument("--ours-args", default="", help='extra `python -m train` options for ours, e.g. "--lr 2e-3"')
    args = parser.parse_args(argv)
    if (splits := load_mnist_or_report(args.data_dir, args.data_root)) is None:
        return 1
    train_split, test_split = splits
    # The digits make train trains on: all but the calibration's held-out last ones (or the first --subset).
    keep = args.subset or len(train_split) - HOLDOUT
    train_split = type(train_split)(train_split.images[:keep], train_split.labels[:keep])
    subset = ["--subset", str(args.subset)] if args.subset else []
    # Ours first: it is short, so both see similar load from anything else on the machine.
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    data += ["--data-root", str(Path(args.data_root).resolve())]
    ours = run_ours(args.epochs, args.seed, args.ours_args.split() + subset, data)
    torch.use_deterministic_algorithms(False)  # the baseline runs as usually written
    baseline = run_baseline(train_split, test_split, args.baseline_epochs, args.seed)
    summary = summarize(baseline, ours)
    for out in (Path(args.json), Path(args.plot)):
        out.parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, Path(args.plot))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("baseline", "ours")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
