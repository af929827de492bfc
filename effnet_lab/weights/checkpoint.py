"""Checkpoint files: read safely, write atomically.

Every checkpoint effnet_lab reads goes through `read_checkpoint` (torch's weights-only
loader: tensors and plain containers only, so a pickle that would run code is refused),
and everything it writes goes through `save_atomic` / `write_atomic` (a temporary file in
the same folder, renamed over the target: a crash mid-write leaves the old file).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["CheckpointError", "check_finite", "load_checkpoint_file", "read_checkpoint", "save_atomic",
           "unwrap_checkpoint", "write_atomic", "write_text_atomic"]


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
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file  # optional: timm's hub files use it
        except ImportError:
            raise CheckpointError(f"{str(path)!r} is a .safetensors file: pip install safetensors to read it") from None
        try:
            return load_file(str(path))
        except Exception as e:
            raise CheckpointError(_unreadable(path, e)) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for garbage: UnpicklingError, RuntimeError, EOFError…
        # torch's weights-only unpickler names what it refused (a GLOBAL) on a line of its own; of
        # garbage it says "Unsupported operand": not a pickle at all, nothing refused
        refused = [line for line in str(e).splitlines() if "GLOBAL" in line]
        if isinstance(e, pickle.UnpicklingError) and refused:
            raise CheckpointError(
                f"refused to load {str(path)!r}: it is not a plain tensor checkpoint (loading it would "
                f"execute or construct arbitrary Python objects). Only state dicts are accepted. "
                f"Detail: {refused[0].strip()}") from None
        with open(path, "rb") as f:
            head = f.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle's PROTO opcode
            raise CheckpointError(
                f"refused to load {str(path)!r}: it is a raw Python pickle, not a tensor checkpoint (loading it "
                f"could execute arbitrary code). Only state dicts saved with torch.save are accepted.") from None
        raise CheckpointError(_unreadable(path, e)) from None


def _unreadable(path: Path, e: BaseException) -> str:
    # torch's own advice (re-run with weights_only=False) is no help for a file that is no checkpoint
    lines = [line.strip() for line in str(e).splitlines() if line.strip() and "weights_only" not in line
             and not line.startswith(("Weights only load failed", "Check the documentation"))]
    detail = lines[0] if lines else ""
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
    check_finite(sd, source)
    return sd, meta


def check_finite(state_dict: Mapping[str, Any], source: str = "checkpoint") -> None:
    """Refuse weights holding NaN or infinity: a model built from them predicts NaN."""
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            bad = (~torch.isfinite(value)).sum().item()
            raise CheckpointError(f"{source}: tensor {key!r} holds {bad} NaN/infinite value(s) of {value.numel()}: "
                                  f"the weights are broken (a diverged run?); use an earlier checkpoint")


# --------------------------------------------------------------------------- writing files
def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(f)` on a temporary file in `path`'s folder, then rename it over `path`.

    A rename within one file system is atomic, so a crash or kill mid-write leaves the
    previous file intact instead of a truncated one. A failed write (disk full, quota, no
    permission) raises `CheckpointError` naming the file and the cause and leaves no temporary
    file; one left behind by a killed write is removed by the next write of the same file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a killed write's leftovers
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise CheckpointError(f"could not write {str(path)!r}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        Path(tmp).unlink(missing_ok=True)
        cause = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise CheckpointError(f"could not write {str(path)!r}: {cause} (the previous file, if any, "
                              f"is unchanged)") from None
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
