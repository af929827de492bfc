"""Writing an ONNX file without losing anything: refuse to overwrite unasked, write atomically."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from ..weights.checkpoint import write_atomic


def check_output(path: str | os.PathLike, overwrite: bool, what: str = "output") -> Path:
    """The output path, refused (before any work) when it exists and overwrite is False, or when
    its folder does not exist."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file name such as {path / 'model.onnx'}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{what} {path} exists; pass overwrite=True (--overwrite) to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{what} {path}: its folder {path.parent} does not exist")
    return path


def save_onnx(proto: onnx.ModelProto, path: Path, metadata: dict[str, str]) -> Path:
    """Write `proto` to `path` atomically, its metadata_props replaced by `metadata`."""
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return write_atomic(path, lambda f: f.write(proto.SerializeToString()))
