"""Files that ship with effnet_lab: the ImageNet class names, and the repository's data/ folder."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["data_path", "imagenet_class_names"]

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
    here = Path(__file__).resolve().parents[2] / "data"
    for root in (here, Path.cwd() / "data", Path.cwd().parent / "data"):
        if root.is_dir():
            return root.joinpath(*parts)
    raise FileNotFoundError("effnet_lab's data/ folder was not found: work from a clone of the repository "
                            "(python3 dev.py lab), or run from its notebooks/ folder")
