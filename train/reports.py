"""metrics.json and the figures: learning curves, confusion matrix, sample predictions."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures go to files, never to a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # noqa: E402

CLASSES = list(range(10))
FIGURES = ("curves.png", "confusion_matrix.png", "samples.png")


def test_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of softmax outputs."""
    preds = probs.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=CLASSES, zero_division=0)
    return {
        "test_accuracy": float((preds == labels).mean()),
        "test_loss": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()),
        "num_test": int(len(labels)),
        "per_class": {
            str(c): {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in CLASSES
        },
        "confusion_matrix": confusion_matrix(labels, preds, labels=CLASSES).tolist(),
    }


def plot_curves(history: list[dict], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"test_{key}"] for h in history], "o-", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("Loss per epoch")
    ax_acc.set_title("Accuracy per epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(matrix: list[list[int]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 7))
    sns.heatmap(np.array(matrix), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_samples(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, path: Path, cols: int = 8) -> None:
    """Two rows of the first test digits, then a row of the most confident mistakes."""
    preds = probs.argmax(1)
    wrong = np.flatnonzero(preds != labels)
    worst = wrong[np.argsort(-probs[wrong, preds[wrong]])][:cols]
    picks = [(i, "") for i in range(min(2 * cols, len(labels)))] + [(i, "mistake ") for i in worst]
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 2.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, tag) in zip(axes.flat, picks, strict=False):
        ok = preds[i] == labels[i]
        ax.imshow(images[i], cmap="gray")
        ax.set_title(
            f"{tag}true {labels[i]}\npred {preds[i]} ({probs[i, preds[i]]:.0%})",
            color="green" if ok else "red",
            fontsize=8,
        )
    fig.suptitle("Test digits: green = right, red = wrong (last row: most confident mistakes)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(reports_dir: Path, metrics: dict, images: np.ndarray, labels: np.ndarray, probs: np.ndarray):
    """Write metrics.json and every figure into ``reports_dir``."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if metrics.get("history"):
        plot_curves(metrics["history"], reports_dir / "curves.png")
    plot_confusion(metrics["confusion_matrix"], reports_dir / "confusion_matrix.png")
    plot_samples(images, labels, probs, reports_dir / "samples.png")
