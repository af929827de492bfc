"""Checkpoint files: read safely, write atomically.

Every checkpoint effnet_lab reads goes through `read_checkpoint` (`torch.load(...,
weights_only=True)`: tensors and plain containers only, so a pickle that would run code is
refused), and everything it writes goes through `save_atomic` / `write_atomic` (a temporary
file in the same folder, renamed over the target: a crash mid-write leaves the old file).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["CheckpointError", "load_checkpoint_file", "read_checkpoint", "save_atomic", "unwrap_checkpoint",
           "write_atomic", "write_text_atomic"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model."""


# --------------------------------------------------------------------------- reading files
def read_checkpoint(path: str | os.PathLike) -> Any:
    """The object stored in a checkpoint file, read safely: the one place effnet_lab loads one.

    Only tensors and plain containers are accepted (`weights_only=True`): a pickle that
    would run code or build arbitrary objects is refused with a `CheckpointError`, and so is a
    file that is not a checkpoint at all (empty, truncated, text, random bytes).
    `.safetensors` files are read with safetensors when it is installed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # optional: timm's hub files use it

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's weights-only unpickler names what it refused on a line of its own
        refused = [line for line in str(e).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        if str(e).startswith("Weights only load failed") and refused:
            raise CheckpointError(
                f"refused to load {str(path)!r}: it is not a plain tensor checkpoint (loading it would "
                f"execute or construct arbitrary Python objects). Only state dicts are accepted. "
                f"Detail: {refused[0].strip()}") from None
        raise CheckpointError(_unreadable(path, e)) from None
    except Exception as e:  # torch raises many types for garbage: RuntimeError, EOFError, IndexError…
        raise CheckpointError(_unreadable(path, e)) from None


def _unreadable(path: Path, e: BaseException) -> str:
    detail = str(e).splitlines()[0] if str(e) else ""
    return (f"could not read checkpoint {str(path)!r}: the file is empty, truncated, corrupt or not a "
            f"PyTorch checkpoint ({type(e).__name__}{': ' + detail if detail else ''})")


def load_checkpoint_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint safely (`read_checkpoint`): returns (state_dict, metadata).

    Training checkpoints (`{"model": state_dict, "class_names": …}`), `{"state_dict": …}`
    wrappers and DistributedDataParallel's `module.` prefix are unwrapped.
    """
    return unwrap_checkpoint(read_checkpoint(path), source=str(Path(path)))


_TRAINING_STATE = {"optimizer", "scheduler", "scaler", "rng", "state_dict_ema", "history", "train_config"}


def unwrap_checkpoint(obj: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict", "model_state_dict", "state_dict_ema"):
            if key in obj and isinstance(obj[key], Mapping):
                # keep descriptive entries (class names, model/data config); not training state
                meta = {k: v for k, v in obj.items() if k != key and k not in _TRAINING_STATE}
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source}: does not contain a state dict (a mapping of names to tensors)")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, meta


# --------------------------------------------------------------------------- writing files
def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(f)` on a temporary file in `path`'s folder, then rename it over `path`.

    A rename within one file system is atomic, so a crash or kill mid-write leaves the
    previous file intact instead of a truncated one; a failed write leaves no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to `path`, atomically (`write_atomic`)."""
    return write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path`, atomically (`write_atomic`)."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))
