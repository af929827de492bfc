"""Image loading and preprocessing for EfficientNet models.

The eval pipeline reproduces timm's: resize the shorter side to
``floor(size / crop_pct)``, centre-crop ``size``, convert to a tensor in [0, 1]
and normalise with the model's mean/std. ``resolve_data_config`` finds those
numbers in the same places timm looks, so

    config = resolve_data_config(model)
    transform = create_transform(**config)

gives the same tensor as timm's
``create_transform(**resolve_data_config({}, model=model))``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

__all__ = [
    "DEFAULT_CROP_PCT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "ImageLoadError",
    "ImageSource",
    "create_transform",
    "imagenet_class_names",
    "load_image",
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
_INTERPOLATIONS: dict[str, InterpolationMode] = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "box": InterpolationMode.BOX,
    "hamming": InterpolationMode.HAMMING,
    "lanczos": InterpolationMode.LANCZOS,
}
# 'center' keeps the aspect ratio and crops; 'squash' resizes both sides independently.
_CROP_MODES = ("center", "squash")
_AUTO_AUGMENTS = ("randaugment", "trivialaugment", "augmix", "autoaugment")
_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")

ImageSource: TypeAlias = str | os.PathLike | Image.Image


# -------- validation


def _check_interpolation(value: Any, name: str = "interpolation") -> str:
    if isinstance(value, InterpolationMode):
        value = value.value
    if not isinstance(value, str) or value.lower() not in _INTERPOLATIONS:
        raise ValueError(f"{name} must be one of {sorted(_INTERPOLATIONS)}, got {value!r}")
    return value.lower()


def _check_crop_pct(value: Any) -> float:
    try:
        pct = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"crop_pct must be a number in (0, 1], got {value!r}") from None
    if not 0.0 < pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {value!r}")
    return pct


def _check_crop_mode(value: Any) -> str:
    if value not in _CROP_MODES:
        raise ValueError(f"crop_mode must be one of {list(_CROP_MODES)}, got {value!r}")
    return value


def _check_triple(value: Any, name: str, positive: bool = False) -> tuple[float, float, float]:
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


def _check_size(value: Any, name: str = "input_size") -> tuple[int, int, int]:
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
        picked["input_size"] = _check_size(source["img_size"], "img_size")
    return picked


def resolve_data_config(
    args: Mapping[str, Any] | argparse.Namespace | torch.nn.Module | None = None,
    *,
    model: torch.nn.Module | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
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
        "input_size": _check_size(config["input_size"]),
        "interpolation": _check_interpolation(config["interpolation"]),
        "mean": _check_triple(config["mean"], "mean"),
        "std": _check_triple(config["std"], "std", positive=True),
        "crop_pct": _check_crop_pct(config["crop_pct"]),
        "crop_mode": _check_crop_mode(config["crop_mode"]),
    }


# -------- transforms


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


def _auto_augment(name: str, mean: tuple[float, float, float]) -> torch.nn.Module:
    # Fill the border that rotations/shears expose with the mean colour, which the
    # later Normalize maps to zero, so the model does not learn black corners.
    fill = [round(255 * m) for m in mean]
    bilinear = InterpolationMode.BILINEAR
    if name == "randaugment":
        return T.RandAugment(interpolation=bilinear, fill=fill)
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
    re_prob: float = 0.0,
    **ignored: Any,
) -> T.Compose:
    """Build the preprocessing pipeline (PIL RGB image -> normalised CHW float tensor).

    Eval (default): resize the shorter side to ``floor(size / crop_pct)``,
    centre-crop ``size``, ``ToTensor``, ``Normalize`` (identical to timm's eval
    transform). Training: ``RandomResizedCrop``, horizontal flip, colour jitter
    or one of ``auto_augment`` in {'randaugment', 'trivialaugment', 'augmix',
    'autoaugment'}, ``ToTensor``, ``Normalize`` and optional ``RandomErasing``.
    ``input_size`` may be an int, (H, W) or (3, H, W). Unknown keyword
    arguments are ignored so ``create_transform(**config)`` always works.
    """
    _, height, width = _check_size(input_size)
    interp_name = _check_interpolation(interpolation)
    interp = _INTERPOLATIONS[interp_name]
    mean = _check_triple(mean, "mean")
    std = _check_triple(std, "std", positive=True)
    if auto_augment is not None and auto_augment not in _AUTO_AUGMENTS:
        raise ValueError(f"auto_augment must be None or one of {list(_AUTO_AUGMENTS)}, got {auto_augment!r}")
    finish: list[Any] = [T.ToTensor(), T.Normalize(mean=mean, std=std)]

    if not is_training:
        crop_pct = _check_crop_pct(crop_pct)
        crop_mode = _check_crop_mode(crop_mode)
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
        steps.append(_auto_augment(auto_augment, mean))
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


# -------- image loading


class ImageLoadError(ValueError):
    """An image could not be read: missing, not an image, or corrupt/truncated."""


def _name_of(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "filename", "") or getattr(source, "name", "") or f"<{type(source).__name__}>")


def _scaled_to_8bit(values: np.ndarray, full_scale: float) -> Image.Image:
    out = np.clip(np.rint(values.astype(np.float64) * (255.0 / full_scale)), 0, 255)
    return Image.fromarray(out.astype(np.uint8), mode="L")


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Map a 16-bit, 32-bit integer or float single-channel image to 8-bit 'L'.

    PIL's own convert('L'/'RGB') clips these at 255, turning most 16-bit photos
    white, so scale the value range instead.
    """
    values = np.asarray(img)
    if img.mode.startswith("I;16"):
        return _scaled_to_8bit(values, 65535.0)
    values = np.nan_to_num(values.astype(np.float64))
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode == "F" and lo >= 0 and hi <= 1:
        return _scaled_to_8bit(values, 1.0)  # float images are usually in [0, 1]
    if lo >= 0 and hi <= 255:
        return _scaled_to_8bit(values, 255.0)  # already 8-bit values in a wide container
    if img.mode == "I" and lo >= 0 and hi <= 65535:
        return _scaled_to_8bit(values, 65535.0)  # 16-bit data stored as mode 'I'
    # Unknown range (negative values, 32-bit data): stretch min..max to 0..255.
    return _scaled_to_8bit(values - lo, hi - lo if hi > lo else 1.0)


def _on_white(img: Image.Image) -> Image.Image:
    # Transparent pixels often hold arbitrary (frequently black) colour; show them as
    # white, like a browser on a white page, rather than exposing that colour.
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _high_depth_to_l(img).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        return _on_white(img)
    if mode == "RGB":
        return img
    return img.convert("RGB")


def load_image(source: ImageSource | IO[bytes]) -> Image.Image:
    """Load an image as a fully decoded RGB ``PIL.Image``.

    ``source`` is a path, a binary file object or a PIL image (which is not
    modified). The EXIF orientation is applied; transparent areas are
    composited onto white; grayscale, palette, CMYK, 16-bit and float images are
    converted with their full value range kept. Raises ``ImageLoadError`` (a
    ``ValueError``) naming the file if it is missing, not an image, or corrupt.
    """
    name = _name_of(source)
    if isinstance(source, Image.Image):
        try:
            source.load()  # lazily opened images decode here, so errors surface now
            return _to_rgb(ImageOps.exif_transpose(source))
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageLoadError(f"{name}: could not decode image data ({exc})") from exc

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(f"{name}: no such file")
        if path.is_dir():
            raise ImageLoadError(f"{name}: is a directory, not an image file")
    elif not hasattr(source, "read"):
        raise TypeError(f"load_image expects a path, file object or PIL image, got {type(source).__name__}")

    try:
        with Image.open(source) as img:
            # Decode now: PIL opens lazily, and a truncated file would otherwise
            # only fail later, deep inside a transform.
            img.load()
            # exif_transpose always returns a new image: the result outlives the file.
            return _to_rgb(ImageOps.exif_transpose(img))
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{name}: not a recognised image file (wrong format or corrupt)") from exc
    except PermissionError as exc:
        raise ImageLoadError(f"{name}: permission denied") from exc
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{name}: image too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports damaged data with any of these, depending on the format.
        raise ImageLoadError(f"{name}: could not decode image data, file truncated or corrupt ({exc})") from exc


# -------- class names


@lru_cache(maxsize=1)
def _imagenet_class_names() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt should list 1000 names, found {len(names)}")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, in class-index order."""
    # The cache holds a tuple; hand out a fresh list so callers cannot corrupt it.
    return list(_imagenet_class_names())


def data_path(*parts: str) -> Path:
    """A path inside the repository's `data/` folder (photos, the demo dataset).

    Found next to the package (an editable install from a clone, the normal case) or from
    the current directory (notebooks run from `notebooks/`).
    """
    here = Path(__file__).resolve().parents[1] / "data"
    for root in (here, Path.cwd() / "data", Path.cwd().parent / "data"):
        if root.is_dir():
            return root.joinpath(*parts)
    raise FileNotFoundError("effnet_lab's data/ folder was not found: work from a clone of the repository "
                            "(python3 dev.py lab), or run from its notebooks/ folder")
