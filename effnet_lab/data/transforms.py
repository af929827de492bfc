"""Preprocessing pipelines: PIL RGB image -> normalised CHW float tensor.

The eval pipeline reproduces timm's: resize the shorter side to ``floor(size / crop_pct)``,
centre-crop ``size``, convert to a tensor in [0, 1] and normalise with the model's mean/std.
Training adds random resized crops, flips, colour jitter or an auto-augment policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from .config import (
    DEFAULT_CROP_MODE,
    DEFAULT_CROP_PCT,
    DEFAULT_INTERPOLATION,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    check_crop_mode,
    check_crop_pct,
    check_interpolation,
    check_size,
    check_triple,
)

__all__ = ["create_transform"]

_AUTO_AUGMENTS = ("randaugment", "trivialaugment", "augmix", "autoaugment")

class _ResizeToCover:
    """Resize keeping the aspect ratio so the image just covers ``size`` (H, W).

    For a square target this is torchvision's shorter-side Resize; a rectangular
    target needs its own rule because the 'shorter side' depends on both shapes.
    """

    def __init__(self, size: tuple[int, int], interpolation: InterpolationMode) -> None:
        self.size = size
        self.interpolation = interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        scale = min(h / self.size[0], w / self.size[1])
        new_size = [max(1, round(h / scale)), max(1, round(w / scale))]
        return T.functional.resize(img, new_size, interpolation=self.interpolation)

    def __repr__(self) -> str:
        interp = self.interpolation.value
        return f"{type(self).__name__}(size={self.size}, interpolation={interp})"


def _pair(value: Any, name: str) -> tuple[float, float]:
    if not isinstance(value, Sequence) or len(value) != 2 or not value[0] <= value[1]:
        raise ValueError(f"{name} must be a (min, max) pair with min <= max, got {value!r}")
    return (float(value[0]), float(value[1]))


def _auto_augment(name: str, mean: tuple[float, float, float], magnitude: int = 9) -> torch.nn.Module:
    # Fill the border that rotations/shears expose with the mean colour, which the
    # later Normalize maps to zero, so the model does not learn black corners.
    fill = [round(255 * m) for m in mean]
    bilinear = InterpolationMode.BILINEAR
    if name == "randaugment":
        return T.RandAugment(magnitude=magnitude, interpolation=bilinear, fill=fill)
    if name == "trivialaugment":
        return T.TrivialAugmentWide(interpolation=bilinear, fill=fill)
    if name == "augmix":
        return T.AugMix(interpolation=bilinear, fill=fill)
    return T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, interpolation=bilinear, fill=fill)


def create_transform(
    input_size: int | Sequence[int] = 224,
    is_training: bool = False,
    interpolation: str = DEFAULT_INTERPOLATION,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_pct: float = DEFAULT_CROP_PCT,
    crop_mode: str = DEFAULT_CROP_MODE,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    color_jitter: float | Sequence[float] = 0.4,
    auto_augment: str | None = None,
    magnitude: int = 9,
    re_prob: float = 0.0,
    **ignored: Any,
) -> T.Compose:
    """Build the preprocessing pipeline (PIL RGB image -> normalised CHW float tensor).

    Eval (default): resize the shorter side to ``floor(size / crop_pct)``,
    centre-crop ``size``, ``ToTensor``, ``Normalize`` (identical to timm's eval
    transform). Training: ``RandomResizedCrop``, horizontal flip, colour jitter
    or one of ``auto_augment`` in {'randaugment', 'trivialaugment', 'augmix',
    'autoaugment'} (``magnitude``: RandAugment's, 0-30), ``ToTensor``,
    ``Normalize`` and optional ``RandomErasing``.
    ``input_size`` may be an int, (H, W) or (3, H, W). Unknown keyword
    arguments are ignored so ``create_transform(**config)`` always works.
    """
    _, height, width = check_size(input_size)
    interp_name = check_interpolation(interpolation)
    interp = INTERPOLATIONS[interp_name]
    mean = check_triple(mean, "mean")
    std = check_triple(std, "std", positive=True)
    if auto_augment is not None and auto_augment not in _AUTO_AUGMENTS:
        raise ValueError(f"auto_augment must be None or one of {list(_AUTO_AUGMENTS)}, got {auto_augment!r}")
    finish: list[Any] = [T.ToTensor(), T.Normalize(mean=mean, std=std)]

    if not is_training:
        crop_pct = check_crop_pct(crop_pct)
        crop_mode = check_crop_mode(crop_mode)
        # floor(size / crop_pct), the same float expression as timm, so both agree
        # on the resize size to the pixel.
        scale_h, scale_w = math.floor(height / crop_pct), math.floor(width / crop_pct)
        if crop_mode == "squash":
            resize: Any = T.Resize((scale_h, scale_w), interpolation=interp)
        elif scale_h == scale_w:
            resize = T.Resize(scale_h, interpolation=interp)  # int size: shorter side
        else:
            resize = _ResizeToCover((scale_h, scale_w), interp)
        return T.Compose([resize, T.CenterCrop((height, width)), *finish])

    scale = _pair(scale, "scale")
    ratio = _pair(ratio, "ratio")
    if not 0.0 <= hflip <= 1.0:
        raise ValueError(f"hflip must be a probability in [0, 1], got {hflip!r}")
    if not 0.0 <= re_prob <= 1.0:
        raise ValueError(f"re_prob must be a probability in [0, 1], got {re_prob!r}")

    steps: list[Any] = [T.RandomResizedCrop((height, width), scale=scale, ratio=ratio, interpolation=interp)]
    if hflip > 0:
        steps.append(T.RandomHorizontalFlip(p=hflip))
    if auto_augment is not None:
        if not (isinstance(magnitude, int) and 0 <= magnitude <= 30):
            raise ValueError(f"magnitude must be an integer in [0, 30] (RandAugment's bins), got {magnitude!r}")
        steps.append(_auto_augment(auto_augment, mean, magnitude))
    elif color_jitter:
        # One number: same strength for brightness, contrast and saturation.
        if isinstance(color_jitter, (int, float)):
            if color_jitter < 0:
                raise ValueError(f"color_jitter must be >= 0, got {color_jitter!r}")
            jitter = (float(color_jitter),) * 3
        elif isinstance(color_jitter, Sequence) and len(color_jitter) in (3, 4):
            jitter = tuple(float(v) for v in color_jitter)
        else:
            raise ValueError(f"color_jitter must be a number or 3/4 numbers, got {color_jitter!r}")
        steps.append(T.ColorJitter(*jitter))
    steps += finish
    if re_prob > 0:
        steps.append(T.RandomErasing(p=re_prob))
    return T.Compose(steps)
