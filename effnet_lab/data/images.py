"""Decoding any image file Pillow can read into the RGB image a model expects."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "ImageSource", "load_image"]

ImageSource: TypeAlias = str | os.PathLike | Image.Image

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
        if isinstance(source, (str, os.PathLike)):
            # Decode from memory: Pillow's TIFF reader drops the EXIF orientation when it decodes
            # from a file path, but applies it when decoding from bytes (found by tests/test_properties.py).
            source = io.BytesIO(Path(source).read_bytes())
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
