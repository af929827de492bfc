"""Which device to run on, which device a model is on, and running it in eval mode."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """`requested` if given (and not "auto"), else the best available: cuda, then mps, then cpu."""
    if requested and requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def usable_device(requested: str | torch.device | None, what: str = "device (--device)") -> torch.device:
    """`pick_device(requested)`, refused with a ValueError naming `what` when torch does not know
    the device or this machine does not have it."""
    try:
        device = pick_device(requested)
    except RuntimeError as e:
        raise ValueError(f"{what} {requested!r} is not a device torch knows: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what} {requested!r}: no CUDA GPU is available here "
                         "(torch.cuda.is_available() is False); use cpu or leave it out")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{what} {requested!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{what} {requested!r}: Apple's MPS is not available here")
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); cpu for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; afterwards every module's own train/eval flag is restored
    (a fine-tuning model may have frozen parts in eval mode that `train()` would not bring back).
    Anything that is not an `nn.Module` (a plain function) is left alone."""
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
    try:
        if isinstance(model, nn.Module):
            model.eval()
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training
