"""Figures for training runs: learning curves and the confusion matrix (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch


def _rows(history: Sequence[Any]) -> list[dict[str, float]]:
    return [asdict(h) if is_dataclass(h) else dict(h) for h in history]


def plot_history(history: Sequence[Any], axes=None):
    """Loss and accuracy per epoch, train and validation, side by side."""
    rows = _rows(history)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [r["epoch"] for r in rows]
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        ax.plot(epochs, [r[f"train_{metric}"] for r in rows], "o-", label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in rows], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[1].set_ylim(0, 1.02)
    return axes


def plot_confusion_matrix(confusion: torch.Tensor, class_names: Sequence[str], ax=None, normalize: bool = True):
    """Rows: true class; columns: predicted class. Normalised per row (recall) by default."""
    cm = confusion.double()
    shown = cm / cm.sum(1, keepdim=True).clamp(min=1) if normalize else cm
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.8 * len(class_names), 0.8 + 0.8 * len(class_names)))
    ax.imshow(shown.numpy(), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if shown[i, j] > 0.5 * shown.max() else "black")
    return ax
