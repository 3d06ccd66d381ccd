"""One training run: options, optimizer, weight averaging, the epochs, the checkpoint and the reports.

``python -m train`` (``make train``) runs :func:`main`.

Writes the weights (a plain state_dict) and, in the reports dir, metrics.json,
curves.png, confusion_matrix.png and samples.png.
"""

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model import MnistCNN
from model.inference import for_inference
from scripts.cli import CliError, check_writable_dir, check_writable_file, fail
from train.allocator import keep_freed_memory
from train.data import DataError, load_mnist
from train.dropout import use_byte_mask_dropout
from train.engine import TrainState, autocast_dtype, evaluate, pick_device, train_one_epoch
from train.evaluate import report
from train.options import build_parser
from train.pooling import pool_before_relu
from train.selection import LossRanking


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def ema_with_warmup(decay: float, total_steps: int):
    """EMA update whose decay ramps up as (1 + n) / (10 + n), so short runs are not stuck near the init.

    The averaging window (1 / (1 - decay) steps) is also kept within a tenth of the run: a
    one-epoch run would otherwise average in the weights of its high learning-rate phase.
    Works on whole lists of tensors (``AveragedModel``'s ``multi_avg_fn``): one fused
    ``lerp`` per step instead of a few small ops per tensor.
    """
    decay = min(decay, 1.0 - 10.0 / max(total_steps, 20))

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # BatchNorm's step counter: keep the latest
            torch._foreach_copy_(averaged, current)
            return
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    return update


def make_optimizer(model, args, total: int):
    decay = [p for p in model.parameters() if p.ndim > 1]  # no weight decay on biases and BatchNorm
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True, fused=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=args.lr, fused=True)
    if args.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=args.lr, total_steps=total, pct_start=args.warmup
        )
    elif args.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    else:
        scheduler = None
    return optimizer, scheduler


def train(args, train_split, test_split, log=print) -> dict:
    """Train, save the checkpoint, write the reports; return metrics.json's content."""
    device = pick_device(args.device)
    keep_freed_memory()
    deterministic = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    # Reproducible on CPU; on CUDA some kernels have no deterministic version.
    torch.use_deterministic_algorithms(device.type == "cpu")
    # Deterministic mode NaN-fills every new tensor by default, a large share of a CPU step; nothing here
    # reads uninitialised memory, so the runs stay bit-identical without it.
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        return _train(args, train_split, test_split, device, log)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def _train(args, train_split, test_split, device: torch.device, log) -> dict:
    seed_everything(args.seed)
    amp_dtype = autocast_dtype(device) if args.precision == "auto" else None
    images, labels = train_split.images.to(device), train_split.labels.to(device)
    test_images, test_labels = test_split.images.to(device), test_split.labels.to(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(args.seed)

    model = MnistCNN().to(device).to(memory_format=torch.channels_last)
    if device.type == "cpu":
        use_byte_mask_dropout(model)
    pool_before_relu(model)
    selection = LossRanking(len(labels), args.select, args.select_pressure, generator)
    steps = sum(-(-selection.epoch_size(e) // args.batch_size) for e in range(1, args.epochs + 1))
    optimizer, scheduler = make_optimizer(model, args, steps)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    ema = None
    if args.ema_decay:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=ema_with_warmup(args.ema_decay, steps), use_buffers=True
        )
    state = TrainState(model, optimizer, scheduler, device, amp_dtype, scaler, generator, ema, args.label_smoothing)
    state.scale, state.elastic, state.elastic_cells = args.scale, args.elastic, args.elastic_cells
    state.selection = selection if args.select < 1.0 else None
    final = ema.module if ema is not None else model
    precision = str(amp_dtype).removeprefix("torch.") if amp_dtype else "float32"
    log(f"training on {len(labels)} images, testing on {len(test_labels)}, {device} ({precision} compute)")

    history, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        if epoch > args.epochs - min(args.clean_epochs, args.epochs // 2):
            state.degrees = state.translate = state.scale = state.elastic = 0.0
        stats = train_one_epoch(
            state, images, labels, args.batch_size, desc=f"epoch {epoch}/{args.epochs}", epoch=epoch
        )
        # Reduced precision for the per-epoch look; the last epoch in fp32, as the weights are served.
        test_loss, test_acc = evaluate(final, test_images, test_labels, amp_dtype if epoch < args.epochs else None)
        seconds = time.perf_counter() - start - sum(h["epoch_time_s"] for h in history)
        history.append(
            {
                "epoch": epoch,
                "train_loss": stats.loss,
                "train_acc": stats.accuracy,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "epoch_time_s": seconds,
                "train_time_s": stats.seconds,
                "examples": stats.examples,
            }
        )
        log(
            f"epoch {epoch:2d}/{args.epochs}  train loss {stats.loss:.4f} acc {stats.accuracy:.4f}  "
            f"test loss {test_loss:.4f} acc {test_acc:.4f}  {seconds:.1f}s"
        )
    wall = time.perf_counter() - start

    model = final.eval()
    Path(args.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, args.checkpoint)
    extra = {
        "history": history,
        "wall_time_s": wall,
        "device": str(device),
        "precision": precision,
        "torch_version": torch.__version__,
        "seed": args.seed,
        "options": {k: v for k, v in vars(args).items()},
        "checkpoint": str(args.checkpoint),
    }
    # Scored as the server runs it (batch norm folded, channels-last): the same probabilities.
    evaluation_start = time.perf_counter()
    metrics = report(for_inference(model), test_split, Path(args.reports_dir), extra)
    metrics["seconds"] = {"epochs": wall, "evaluation_and_figures": time.perf_counter() - evaluation_start}
    (Path(args.reports_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(
        f"test accuracy {metrics['test_accuracy']:.4%} in {wall:.1f}s; "
        f"weights in {args.checkpoint}, reports in {args.reports_dir}/"
    )
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        pick_device(args.device)
        check_writable_file(Path(args.checkpoint), "checkpoint")
        check_writable_dir(Path(args.reports_dir), "reports dir")
        train_split, test_split = load_mnist(args.data_dir, args.data_root)
    except (CliError, DataError, ValueError) as err:
        return fail(str(err))
    if args.holdout >= len(train_split):
        return fail(f"--holdout must be below {len(train_split)}, the training set's size (got {args.holdout})")
    keep = len(train_split) - args.holdout
    train_split = type(train_split)(train_split.images[:keep], train_split.labels[:keep])
    if args.subset:
        train_split = type(train_split)(train_split.images[: args.subset], train_split.labels[: args.subset])
    train(args, train_split, test_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
