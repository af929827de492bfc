"""Top-k classification of image files with any timm-style classifier."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from PIL import Image

from ..data.config import resolve_data_config
from ..data.images import ImageSource, load_image
from ..data.resources import imagenet_class_names
from ..data.transforms import create_transform
from .device import eval_mode, model_device

__all__ = ["Prediction", "label_names", "predict"]

# One image's result: (label, probability) pairs, most likely first.
Prediction = list[tuple[str, float]]


def _check_logits(logits: Any) -> None:
    if isinstance(logits, torch.Tensor) and logits.ndim == 2:
        return
    got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
    raise ValueError(f"predict needs a classifier returning (batch, num_classes) logits, got {got}")


def label_names(model: torch.nn.Module, num_classes: int, labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        labels = list(labels)
        if len(labels) != num_classes:
            raise ValueError(f"labels has {len(labels)} names but the model has {num_classes} outputs")
        return [str(name) for name in labels]
    cfg = getattr(model, "pretrained_cfg", None) or {}
    cfg_names = cfg.get("label_names") if hasattr(cfg, "get") else None
    # A head replaced for fine-tuning keeps the old pretrained_cfg, so only trust
    # label_names whose count matches the outputs actually produced.
    if cfg_names is not None and len(cfg_names) == num_classes:
        return [str(name) for name in cfg_names]
    if num_classes == 1000:
        return imagenet_class_names()
    return [f"class_{i}" for i in range(num_classes)]


def predict(
    model: torch.nn.Module,
    images: ImageSource | Iterable[ImageSource],
    topk: int = 5,
    *,
    labels: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 16,
) -> Prediction | list[Prediction]:
    """Classify one image or several and return the ``topk`` most likely labels.

    ``images`` is a path or PIL image, or a sequence of them. Preprocessing
    comes from ``resolve_data_config(model)``. Returns ``[(label, prob), ...]``
    best first for one image, or a list of those for a sequence. Labels come
    from ``labels``, else ``model.pretrained_cfg['label_names']``, else the
    ImageNet names for a 1000-class model, else ``'class_<i>'``. The model's
    train/eval mode and device are left as they were.
    """
    single = isinstance(images, (str, os.PathLike, Image.Image))
    items: list[Any] = [images] if single else list(images)  # type: ignore[arg-type]
    if not items:
        raise ValueError("images is empty: pass an image path, a PIL image or a non-empty list of them")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be an integer >= 1, got {topk!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")

    if getattr(model, "num_classes", None) == 0:
        raise ValueError("predict needs a classifier, but this model has none (num_classes=0: it returns pooled "
                         "features); give it one with model.reset_classifier(n) and train it, or load a checkpoint")
    transform = create_transform(**resolve_data_config(model))
    home = model_device(model)
    target = torch.device(device) if device is not None else home
    probs: list[torch.Tensor] = []
    try:
        if target != home:
            model.to(target)
        with eval_mode(model), torch.inference_mode():
            for start in range(0, len(items), batch_size):
                # Load per batch so a long list of files never sits in memory at once.
                batch = torch.stack([transform(load_image(item)) for item in items[start : start + batch_size]])
                logits = model(batch.to(target))
                _check_logits(logits)
                probs.append(logits.float().softmax(dim=-1).cpu())
    finally:
        if target != home:
            model.to(home)

    all_probs = torch.cat(probs)
    names = label_names(model, all_probs.shape[1], labels)
    values, indices = all_probs.topk(min(topk, all_probs.shape[1]), dim=1)
    results = [
        [(names[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)]
        for row_p, row_i in zip(values, indices, strict=True)
    ]
    return results[0] if single else results
