"""The data config of a model: input size, crop, interpolation, normalisation.

``resolve_data_config`` finds those numbers in the same places timm looks (defaults <
``model.pretrained_cfg`` < args < overrides), so

    config = resolve_data_config(model)
    transform = create_transform(**config)

gives the same tensor as timm's ``create_transform(**resolve_data_config({}, model=model))``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchvision.transforms import InterpolationMode

__all__ = [
    "DEFAULT_CROP_PCT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "resolve_data_config",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# TF-ported weights (EfficientNet-Lite, tf_* models) expect inputs scaled to [-1, 1].
INCEPTION_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
INCEPTION_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)

DEFAULT_INPUT_SIZE: tuple[int, int, int] = (3, 224, 224)
DEFAULT_INTERPOLATION = "bicubic"
DEFAULT_CROP_PCT = 0.875
DEFAULT_CROP_MODE = "center"

# The resampling filters PIL offers; the names match timm's and torchvision's.
INTERPOLATIONS: dict[str, InterpolationMode] = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "box": InterpolationMode.BOX,
    "hamming": InterpolationMode.HAMMING,
    "lanczos": InterpolationMode.LANCZOS,
}
# 'center' keeps the aspect ratio and crops; 'squash' resizes both sides independently.
_CROP_MODES = ("center", "squash")
_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")

# -------- validation


def check_interpolation(value: Any, name: str = "interpolation") -> str:
    if isinstance(value, InterpolationMode):
        value = value.value
    if not isinstance(value, str) or value.lower() not in INTERPOLATIONS:
        raise ValueError(f"{name} must be one of {sorted(INTERPOLATIONS)}, got {value!r}")
    return value.lower()


def check_crop_pct(value: Any) -> float:
    try:
        pct = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"crop_pct must be a number in (0, 1], got {value!r}") from None
    if not 0.0 < pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {value!r}")
    return pct


def check_crop_mode(value: Any) -> str:
    if value not in _CROP_MODES:
        raise ValueError(f"crop_mode must be one of {list(_CROP_MODES)}, got {value!r}")
    return value


def check_triple(value: Any, name: str, positive: bool = False) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        # Covers scalars, strings and sequences holding non-numbers alike.
        raise ValueError(f"{name} must be 3 numbers (one per RGB channel), got {value!r}") from None
    if len(out) != 3:
        raise ValueError(f"{name} must have 3 values (one per RGB channel), got {value!r}")
    if positive and not all(v > 0 for v in out):
        raise ValueError(f"{name} values must all be > 0, got {value!r}")
    return out  # type: ignore[return-value]


def check_size(value: Any, name: str = "input_size") -> tuple[int, int, int]:
    """Accept 224, (224, 224) or (3, 224, 224) and return (3, H, W)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        dims: tuple[Any, ...] = (3, value, value)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) in (2, 3):
        dims = tuple(value) if len(value) == 3 else (3, *value)
    else:
        raise ValueError(f"{name} must be an int, (H, W) or (3, H, W), got {value!r}")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ValueError(f"{name} must hold positive integers, got {value!r}")
    if dims[0] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels, got {value!r}")
    return (3, int(dims[1]), int(dims[2]))


# -------- data config


def _as_dict(cfg: Any, name: str) -> dict[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, argparse.Namespace):
        return vars(cfg)
    if isinstance(cfg, Mapping):
        return dict(cfg)
    if hasattr(cfg, "to_dict"):  # timm's PretrainedCfg dataclass
        return dict(cfg.to_dict())
    raise TypeError(f"{name} must be a dict (or None), got {type(cfg).__name__}")


def _layer(source: Mapping[str, Any]) -> dict[str, Any]:
    """Pick the data-config keys out of one source, turning img_size into input_size."""
    picked = {k: source[k] for k in _CONFIG_KEYS if source.get(k) is not None}
    # Like timm, an explicit input_size beats img_size within the same source.
    if "input_size" not in picked and source.get("img_size") is not None:
        picked["input_size"] = check_size(source["img_size"], "img_size")
    return picked


def resolve_data_config(
    args: Mapping[str, Any] | argparse.Namespace | torch.nn.Module | None = None,
    *,
    model: torch.nn.Module | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
    use_test_size: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Work out the preprocessing settings for a model.

    Sources, later wins: defaults (224, bicubic, ImageNet mean/std, crop 0.875)
    < ``pretrained_cfg`` (or, if not given, ``model.pretrained_cfg``) < ``args``
    < keyword ``overrides``. A model may be passed positionally:
    ``resolve_data_config(model)``. ``img_size=288`` is shorthand for
    ``input_size=(3, 288, 288)``.

    Returns a dict with ``input_size``, ``interpolation``, ``mean``, ``std``,
    ``crop_pct`` and ``crop_mode``, ready for ``create_transform(**config)``.
    """
    if isinstance(args, torch.nn.Module):
        if model is not None and model is not args:
            raise ValueError("a model was passed both positionally and as model=")
        model, args = args, None

    unknown = set(overrides) - set(_CONFIG_KEYS) - {"img_size"}
    if unknown:
        raise TypeError(
            f"unknown data config override(s) {sorted(unknown)}; expected some of {sorted((*_CONFIG_KEYS, 'img_size'))}"
        )

    if pretrained_cfg is None and model is not None:
        pretrained_cfg = getattr(model, "pretrained_cfg", None)
    if use_test_size and pretrained_cfg and pretrained_cfg.get("test_input_size"):
        pretrained_cfg = {**pretrained_cfg, "input_size": pretrained_cfg["test_input_size"]}

    config: dict[str, Any] = {
        "input_size": DEFAULT_INPUT_SIZE,
        "interpolation": DEFAULT_INTERPOLATION,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "crop_pct": DEFAULT_CROP_PCT,
        "crop_mode": DEFAULT_CROP_MODE,
    }
    for source, name in (
        (pretrained_cfg, "pretrained_cfg"),
        (args, "args"),
        (overrides, "overrides"),
    ):
        config.update(_layer(_as_dict(source, name)))

    return {
        "input_size": check_size(config["input_size"]),
        "interpolation": check_interpolation(config["interpolation"]),
        "mean": check_triple(config["mean"], "mean"),
        "std": check_triple(config["std"], "std", positive=True),
        "crop_pct": check_crop_pct(config["crop_pct"]),
        "crop_mode": check_crop_mode(config["crop_mode"]),
    }
