"""How closely an exported (or quantized) model follows the eager one on real images."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from ..data.config import resolve_data_config
from ..data.folders import class_images
from ..data.images import ImageSource, load_image
from ..data.transforms import create_transform
from ..model.device import eval_mode


@dataclass(frozen=True)
class Agreement:
    count: int
    top1_same: int
    max_abs_diff: float  # over all logits
    # The largest lead (top-1 minus top-2 probability) the reference had on an image where the
    # other model's top-1 differs: small means only near-ties flipped. 0 when none flipped.
    worst_flip_margin: float = 0.0

    @property
    def rate(self) -> float:
        return self.top1_same / self.count


def load_check_images(paths: Sequence[str | os.PathLike]) -> list[Image.Image]:
    """Every image decoded up front, so a bad file is reported (by name) before any export."""
    return [load_image(p) for p in paths]


def _batches(model: torch.nn.Module, images: Sequence[ImageSource], batch_size: int) -> Iterator[torch.Tensor]:
    """`images` decoded and preprocessed with `model`'s data config, `batch_size` at a time."""
    transform = create_transform(**resolve_data_config(model))
    for start in range(0, len(images), batch_size):
        yield torch.stack([transform(load_image(i)) for i in images[start:start + batch_size]])


def agreement(reference: torch.nn.Module, other: torch.nn.Module, images: Sequence[ImageSource],
              batch_size: int = 16) -> Agreement:
    """Top-1 agreement and the largest logit difference of `other` against `reference`, both fed
    the reference's preprocessing."""
    same, worst, margin = 0, 0.0, 0.0
    with eval_mode(reference), torch.inference_mode():
        for x in _batches(reference, images, batch_size):
            a, b = reference(x).float(), other(x).float()
            agree = a.argmax(1) == b.argmax(1)
            same += int(agree.sum())
            worst = max(worst, float((a - b).abs().max()))
            top2 = a.softmax(1).topk(2, dim=1).values
            margin = max([margin, *(top2[:, 0] - top2[:, 1])[~agree].tolist()])
    return Agreement(len(images), same, worst, margin)


def folder_accuracy(model: torch.nn.Module, folder: str | os.PathLike, batch_size: int = 16) -> tuple[int, int]:
    """(correct, total) of `model` on an image folder laid out one subfolder per class, the
    classes matched by name to the model's class names and each image preprocessed with the
    model's own data config (so an ONNX file is judged by the preprocessing it carries)."""
    names = list((getattr(model, "pretrained_cfg", None) or {}).get("label_names") or [])
    by_class = class_images(folder)
    unknown = [c for c in by_class if c not in names]
    if unknown:
        raise ValueError(f"{folder}: the model has no class named {', '.join(unknown)} (its classes: {names})")
    paths = [p for images in by_class.values() for p in images]
    labels = torch.tensor([names.index(c) for c, images in by_class.items() for _ in images])
    correct = 0
    with eval_mode(model), torch.inference_mode():
        for start, x in zip(range(0, len(paths), batch_size), _batches(model, paths, batch_size), strict=True):
            correct += int((model(x).argmax(1) == labels[start:start + batch_size]).sum())
    return correct, len(paths)
