"""The training and evaluation loops on in-memory tensors."""

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model import normalize
from train.augment import random_affine
from train.selection import LossRanking


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    return torch.device(name)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision this hardware runs fast, or None for plain fp32.

    CPUs only gain from bf16 with native bf16 instructions (AVX512-BF16 or AMX);
    elsewhere emulated bf16 is slower than fp32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return None


def to_input(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]."""
    return images_u8.unsqueeze(1).float().div_(255.0)


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    seconds: float
    examples: int


@dataclass
class TrainState:
    """Everything one epoch of training needs besides the data."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    device: torch.device
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    generator: torch.Generator  # shuffling and augmentation, on the data's device
    ema: torch.optim.swa_utils.AveragedModel | None = None
    label_smoothing: float = 0.0
    degrees: float = 10.0
    translate: float = 0.1
    scale: float = 0.0
    elastic: float = 0.0
    elastic_cells: int = 4
    selection: "LossRanking | None" = None


def train_one_epoch(
    state: TrainState, images: torch.Tensor, labels: torch.Tensor, batch_size: int, desc: str = "", epoch: int = 1
):
    """One pass over (uint8 images, labels) held on the training device; with ``state.selection``,
    over the share of them it picks for epoch ``epoch``."""
    model = state.model.train()
    start = time.perf_counter()
    if state.selection is not None:
        order = state.selection.order(epoch)
    else:
        order = torch.randperm(len(labels), device=images.device, generator=state.generator)
    total_loss = torch.zeros((), device=state.device)
    correct = torch.zeros((), device=state.device, dtype=torch.long)
    batches = order.split(batch_size)
    for idx in tqdm(batches, desc=desc, leave=False, disable=None, unit="batch"):
        x = to_input(images[idx])
        if state.degrees or state.translate or state.scale or state.elastic:
            x = random_affine(
                x, state.degrees, state.translate, state.generator, state.scale, state.elastic, state.elastic_cells
            )
        x = normalize(x).contiguous(memory_format=torch.channels_last)
        y = labels[idx]
        with torch.autocast(state.device.type, dtype=state.amp_dtype or torch.float32, enabled=bool(state.amp_dtype)):
            logits = model(x)
        losses = F.cross_entropy(logits.float(), y, label_smoothing=state.label_smoothing, reduction="none")
        loss = losses.mean()
        if state.selection is not None:
            state.selection.record(idx, losses)
        state.optimizer.zero_grad(set_to_none=True)
        if state.scaler is not None:
            state.scaler.scale(loss).backward()
            state.scaler.step(state.optimizer)
            state.scaler.update()
        else:
            loss.backward()
            state.optimizer.step()
        if state.scheduler is not None:
            state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(model)
        # Accumulate on the device: no host sync per batch.
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
    n = len(order)
    return EpochStats(total_loss.item() / n, correct.item() / n, time.perf_counter() - start, n)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 250, amp_dtype: torch.dtype | None = None
) -> torch.Tensor:
    """fp32 logits for normalised (N, 1, 28, 28) inputs, in eval mode, on the model's device.

    With ``amp_dtype`` the forward pass runs under autocast (a quick look during training);
    without it, in fp32 as served. The default chunk keeps activations under glibc's 32 MB
    mmap threshold (see ``train.allocator``), so they are reused instead of page-faulted in.
    """
    model.eval()
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        chunks = (chunk.to(device, memory_format=torch.channels_last) for chunk in inputs.split(batch_size))
        return torch.cat([model(chunk).float().cpu() for chunk in chunks])


def evaluate(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, amp_dtype: torch.dtype | None = None
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on uint8 images; fp32 unless ``amp_dtype`` is given."""
    logits = predict_logits(model, normalize(to_input(images)), amp_dtype=amp_dtype)
    labels = labels.cpu()
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()
