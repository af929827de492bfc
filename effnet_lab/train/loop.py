"""The training loop, as functions that take their collaborators.

    train_step       one optimisation step on one batch
    train_one_epoch  every batch of a loader once, stepping the schedule per batch
    evaluate         loss, accuracy and confusion matrix over a loader

They work on any classifier (`nn.Module` returning logits), any loader yielding (images,
labels), any optimizer and scheduler. They do not set train/eval mode for training (the caller
knows which parts are frozen); `evaluate` runs in eval mode and restores the modes after.
The `Trainer`, the SE study and the scaling study all train through these.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..model.device import eval_mode

Autocast = Callable[[], contextlib.AbstractContextManager]
Reduce = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over processes (DDP); identity alone


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to try."""


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite; nothing was updated by that step."""

    def __init__(self, loss: float, where: str = ""):
        self.loss, self.where = loss, where
        super().__init__(f"the loss became {loss}" + (f" at {where}" if where else ""))


class OutOfMemory(TrainingError):
    """The accelerator ran out of memory during a step."""

    def __init__(self, device: str, batch_size: int):
        self.device, self.batch_size = device, batch_size
        super().__init__(f"out of {device} memory at batch size {batch_size}")


# ----------------------------------------------------------------------------- randomness
def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


# ----------------------------------------------------------------------------- schedule
def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR multiplier per step: linear warm-up from ~0, then cosine down to `min_ratio`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


# ----------------------------------------------------------------------------- the loop
def to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu",
              channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return (images.to(device, non_blocking=True, memory_format=fmt), labels.to(device, non_blocking=True))


def train_step(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
               labels: torch.Tensor, optimizer: torch.optim.Optimizer, *, label_smoothing: float = 0.0,
               autocast: Autocast = contextlib.nullcontext, scaler: torch.amp.GradScaler | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward under `autocast`, label-smoothed cross-entropy (in float32), backward through the
    grad `scaler` if any, optimizer step. Returns (logits, loss). A non-finite loss raises
    `NonFiniteLoss` before anything is updated; running out of GPU memory raises `OutOfMemory`."""
    try:
        with autocast():
            logits = model(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(loss.item())
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    except torch.cuda.OutOfMemoryError:
        raise OutOfMemory(images.device.type, labels.shape[0]) from None
    return logits, loss


def train_one_epoch(model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
                    loader: Iterable[tuple[torch.Tensor, torch.Tensor]], optimizer: torch.optim.Optimizer, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    device: torch.device | str = "cpu", channels_last: bool = False, label_smoothing: float = 0.0,
                    autocast: Autocast = contextlib.nullcontext, scaler: torch.amp.GradScaler | None = None,
                    reduce: Reduce | None = None, progress: Callable[[Iterable], Iterable] | None = None,
                    where: str = "", input_size: int | None = None) -> dict[str, float]:
    """Train on every batch of `loader` once; the scheduler steps after every batch.

    Returns the epoch's mean `loss`, `acc` (both over all processes when `reduce` sums across
    them), `images_per_s` and `time_s`. A `NonFiniteLoss` names the batch it happened at
    (after `where`, e.g. "epoch 3, "). `progress` wraps the loader (a tqdm bar, say).
    `input_size` resizes every batch to that square size first (bilinear, antialiased), for
    progressive learning on datasets whose transform is fixed.
    """
    device = torch.device(device)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    start = time.perf_counter()
    batches = progress(loader) if progress else loader
    for step, (images, labels) in enumerate(batches):
        images, labels = to_device(images, labels, device, channels_last)
        if input_size is not None and tuple(images.shape[-2:]) != (input_size, input_size):
            images = F.interpolate(images, size=(input_size, input_size), mode="bilinear", antialias=True)
        try:
            logits, loss = train_step(model, images, labels, optimizer, label_smoothing=label_smoothing,
                                      autocast=autocast, scaler=scaler)
        except NonFiniteLoss as e:
            raise NonFiniteLoss(e.loss, f"{where}batch {step + 1}") from None
        if scheduler is not None:
            scheduler.step()
        n = labels.shape[0]
        totals += torch.tensor([loss.item() * n, (logits.argmax(1) == labels).sum().item(), n],
                               dtype=torch.float64, device=device)
        if hasattr(batches, "set_postfix"):
            batches.set_postfix(loss=f"{loss.item():.3f}")
    elapsed = time.perf_counter() - start
    if reduce is not None:
        totals = reduce(totals)
    count = totals[2].clamp(min=1)
    return {"loss": (totals[0] / count).item(), "acc": (totals[1] / count).item(),
            "images_per_s": totals[2].item() / elapsed if elapsed > 0 else 0.0, "time_s": elapsed}


@dataclass
class EvalResult:
    loss: float  # mean cross-entropy (no label smoothing)
    accuracy: float
    confusion: torch.Tensor  # [true class, predicted class] counts
    class_names: list[str] = field(default_factory=list)
    p_true: float = float("nan")  # mean probability given to the right class

    def per_class_accuracy(self) -> dict[str, float]:
        cm = self.confusion.double()
        acc = (cm.diag() / cm.sum(1).clamp(min=1)).tolist()
        return dict(zip(self.class_names, acc, strict=True))


@torch.no_grad()
def evaluate(model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
             loader: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int, *,
             device: torch.device | str = "cpu", channels_last: bool = False,
             autocast: Autocast = contextlib.nullcontext, reduce: Reduce | None = None,
             class_names: Sequence[str] = ()) -> EvalResult:
    """Loss, accuracy, mean p(right class) and the confusion matrix of `model` over `loader`,
    in eval mode (restored afterwards), summed over processes when `reduce` is given."""
    device = torch.device(device)
    k = num_classes
    confusion = torch.zeros(k, k, dtype=torch.float64, device=device)
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss, p(right class)
    with eval_mode(model):
        for images, labels in loader:
            images, labels = to_device(images, labels, device, channels_last)
            if len(labels) and (labels.min() < 0 or labels.max() >= k):
                raise ValueError(f"a label {labels.max().item()} is out of range for {k} classes")
            with autocast():
                logits = model(images).float()
            sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
            sums[1] += logits.softmax(1).gather(1, labels[:, None]).sum().double()
            confusion += torch.bincount(labels * k + logits.argmax(1), minlength=k * k).view(k, k).double()
    if reduce is not None:
        confusion, sums = reduce(confusion), reduce(sums)
    count = confusion.sum().clamp(min=1)
    return EvalResult((sums[0] / count).item(), (confusion.diag().sum() / count).item(), confusion.cpu().long(),
                      list(class_names), (sums[1] / count).item())
