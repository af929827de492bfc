"""Writing an output file without losing anything: refuse to overwrite unasked, write atomically."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; moved onto `path` only if the block succeeds, so
    a crash never leaves a half-written file under the real name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
