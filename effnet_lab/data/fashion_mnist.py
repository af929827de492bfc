"""Fashion-MNIST as two uint8 tensors, read offline by torchvision's own dataset class.

70,000 real 28×28 greyscale photos of clothes in 10 classes (Zalando Research, MIT licence):
the training set of the scaling study (notebook 07). Where it comes from, first found wins:

    full     the four IDX files of Debian's `dataset-fashion-mnist`
             (/usr/share/datasets/fashion-mnist/), or any folder holding them
             (`EFFNET_FASHION_MNIST=/that/folder`); online, `download=True` lets torchvision
             fetch them
    subset   the stratified subset committed in the repository (data/fashion_mnist/:
             500 training and 100 test images per class), so the notebook runs on a fresh
             clone on any OS and in Colab

torchvision's `FashionMNIST` reads uncompressed IDX files from `<root>/FashionMNIST/raw/`, so
the gzipped files are decompressed once into a cache folder (`EFFNET_LAB_CACHE`, default
~/.cache/effnet_lab) and read from there. Nothing here parses IDX itself.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .resources import data_path

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "FashionMNISTSplit",
           "fashion_mnist_dataset", "find_fashion_mnist", "load_fashion_mnist", "stratified_indices"]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
# Pixel statistics of the 60,000 training images (in [0, 1]), the usual normalisation.
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SOURCES = ("auto", "full", "subset")


@dataclass(frozen=True)
class FashionMNISTSplit:
    """One split in memory: images (N, 28, 28) uint8, labels (N,) int64, and where they came from."""

    images: torch.Tensor
    labels: torch.Tensor
    split: str
    source: str  # "full" or "subset"
    folder: Path  # the folder the IDX files were read from

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(FASHION_MNIST_CLASSES)).tolist()

    def subset(self, per_class: int | None, seed: int = 0) -> FashionMNISTSplit:
        """`per_class` images of every class (`stratified_indices`); None keeps everything."""
        if per_class is None:
            return self
        keep = stratified_indices(self.labels, per_class, seed)
        return FashionMNISTSplit(self.images[keep], self.labels[keep], self.split, self.source, self.folder)


def stratified_indices(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """`per_class` indices of every class (all of a class that has fewer), drawn without
    replacement with a fixed seed, in ascending order."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(int(labels.max()) + 1):
        members = (labels == c).nonzero().flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(picks).sort().values


def _has_files(folder: Path) -> bool:
    names = [n for pair in FILES.values() for n in pair]
    return all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names)


def _full_folders() -> list[Path]:
    env = os.environ.get("EFFNET_FASHION_MNIST")
    return [Path(env)] if env else [DEBIAN_FOLDER]


def _subset_folder() -> Path | None:
    try:
        return data_path("fashion_mnist")
    except FileNotFoundError:
        return None


def find_fashion_mnist(source: str = "auto") -> tuple[str, Path]:
    """("full" | "subset", folder of IDX files) for `source` "auto" (full when present), "full",
    "subset", or a folder path holding the four files."""
    if source not in SOURCES:
        folder = Path(source)
        if not _has_files(folder):
            raise FileNotFoundError(f"{folder}: no Fashion-MNIST IDX files there (want {', '.join(FILES['train'])}, "
                                    f"{', '.join(FILES['test'])}, each optionally .gz)")
        return "full", folder
    if source in ("auto", "full"):
        for folder in _full_folders():
            if _has_files(folder):
                return "full", folder
        if source == "full":
            raise FileNotFoundError(f"the full Fashion-MNIST was not found in {', '.join(map(str, _full_folders()))}: "
                                    f"apt-get install {DEBIAN_PACKAGE}, set EFFNET_FASHION_MNIST to a folder of "
                                    "its IDX files, or use source='subset'")
    folder = _subset_folder()
    if folder is None or not _has_files(folder):
        raise FileNotFoundError("the committed Fashion-MNIST subset (data/fashion_mnist/) was not found: work from a "
                                "clone of the repository, or rebuild it with data/build_fashion_mnist_subset.py")
    return "subset", folder


def _cache_root() -> Path:
    return Path(os.environ.get("EFFNET_LAB_CACHE", Path.home() / ".cache" / "effnet_lab"))


def _torchvision_root(folder: Path) -> Path:
    """A root laid out as torchvision wants (<root>/FashionMNIST/raw/<uncompressed files>),
    built once per source folder; each file is written atomically, so a killed run never
    leaves half a file that a later one would trust."""
    tag = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    root = _cache_root() / f"fashion_mnist-{tag}"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in (n for pair in FILES.values() for n in pair):
        target, plain, packed = raw / name, folder / name, folder / f"{name}.gz"
        source = packed if packed.is_file() else plain
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        with tempfile.NamedTemporaryFile(dir=raw, prefix=f".{name}.", suffix=".tmp", delete=False) as tmp:
            opener = gzip.open if source.suffix == ".gz" else open
            with opener(source, "rb") as f:
                shutil.copyfileobj(f, tmp)
        os.replace(tmp.name, target)
    return root


def _torchvision_dataset(split: str, source: str, download: bool = False, transform=None):
    """torchvision's `FashionMNIST` over the files `source` finds: (dataset, kind, folder)."""
    from torchvision.datasets import FashionMNIST

    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    try:
        kind, folder = find_fashion_mnist(source)
        root = _torchvision_root(folder)
    except FileNotFoundError:
        if not download:
            raise
        kind, folder = "full", _cache_root() / "fashion_mnist-download"
        root = folder
    dataset = FashionMNIST(str(root), train=split == "train", download=download, transform=transform)
    return dataset, kind, folder


def fashion_mnist_dataset(split: str = "train", source: str = "auto", transform=None):
    """torchvision's `FashionMNIST` dataset over the same files (PIL images, per-sample
    `transform`): the ordinary pipeline, which the study's batched one is measured against."""
    return _torchvision_dataset(split, source, transform=transform)[0]


def load_fashion_mnist(split: str = "train", source: str = "auto", *, download: bool = False) -> FashionMNISTSplit:
    """The `split` ("train" or "test") of Fashion-MNIST as uint8 tensors, via torchvision.

    source: "auto" (the full set when present, else the committed subset), "full", "subset", or a
    folder of the IDX files. download=True (online only) lets torchvision fetch the full set into
    the cache when no local copy exists.
    """
    dataset, kind, folder = _torchvision_dataset(split, source, download)
    return FashionMNISTSplit(dataset.data.clone(), dataset.targets.clone(), split, kind, folder)
