"""Datasets from a folder of your own images, checked before training starts.

Two layouts are understood::

    root/train/<class>/*.jpg   root/val/<class>/*.jpg    (val may be 'valid'/'validation')
    root/<class>/*.jpg                                   (split automatically, stratified)

``scan_image_folder`` finds the classes and images, skips non-image files,
opens every image cheaply to weed out corrupt ones, and raises a clear
``DatasetError`` for any layout problem, so nothing fails halfway through an
epoch. ``image_folder_datasets`` wraps the result in two ``ImageFolderDataset``
objects ready for a ``DataLoader``. Class indices follow the sorted folder
names, exactly as ``torchvision.datasets.ImageFolder`` assigns them.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import functional as TF

from .images import ImageLoadError, load_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "class_images",
    "DatasetError",
    "FolderSummary",
    "ImageFolderDataset",
    "SkippedImageWarning",
    "image_folder_datasets",
    "scan_image_folder",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
VAL_DIR_NAMES: tuple[str, ...] = ("val", "valid", "validation")
# Folders that are never classes: zip tools on macOS add '__MACOSX' next to the real ones.
_IGNORED_DIRS = frozenset({"__macosx"})
_IMBALANCE_WARN = 3.0
_CHECK_THREADS = 8

Sample = tuple[Path, int]


class DatasetError(ValueError):
    """A problem with an image folder, found before training starts."""


class SkippedImageWarning(UserWarning):
    """An image could not be loaded during training and another one was used instead."""


def is_image_file(path: str | os.PathLike) -> bool:
    """True if the file name has one of ``IMAGE_EXTENSIONS`` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# -------- summary


@dataclass
class FolderSummary:
    """What ``scan_image_folder`` found: classes, image counts and the files it left out."""

    root: Path
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split ('train'/'val') -> class -> number of images
    skipped_non_image: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)
    auto_split: bool = False
    # Why each unreadable file was rejected (path -> short reason).
    errors: dict[Path, str] = field(default_factory=dict)
    # Folder links that lead out of their class folder: not followed (they would mislabel images).
    links_out: list[Path] = field(default_factory=list)

    @property
    def imbalance(self) -> float:
        """Largest / smallest number of training images per class (inf if a class has none)."""
        sizes = [self.counts.get("train", {}).get(c, 0) for c in self.classes]
        if not sizes:
            return 1.0
        return math.inf if min(sizes) == 0 else max(sizes) / min(sizes)

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def __str__(self) -> str:
        train, val = self.counts.get("train", {}), self.counts.get("val", {})
        layout = (
            "one folder per class, split automatically into train/val (stratified)"
            if self.auto_split
            else "separate train/ and val/ folders"
        )
        lines = [
            f"Image folder: {self.root}",
            f"Layout: {layout}",
            f"{len(self.classes)} classes, {sum(train.values())} train / {sum(val.values())} val images:",
        ]
        shown = 20
        width = max((len(c) for c in self.classes[:shown]), default=0)
        for c in self.classes[:shown]:
            lines.append(f"  {c:<{width}}  {train.get(c, 0):>6} train  {val.get(c, 0):>6} val")
        if len(self.classes) > shown:
            lines.append(f"  ... and {len(self.classes) - shown} more classes")
        lines.append(
            f"Skipped {len(self.skipped_non_image)} non-image file(s); {len(self.unreadable)} unreadable image(s); "
            f"{len(self.links_out)} link(s) leading out of their class folder (not followed)"
        )
        for path in self.links_out[:5]:
            lines.append(f"  link not followed: {self._rel(path)} -> {os.path.realpath(path)}")
        for path in self.unreadable[:5]:
            reason = self.errors.get(path)
            lines.append(f"  unreadable: {self._rel(path)}" + (f" ({reason})" if reason else ""))
        if len(self.unreadable) > 5:
            lines.append(f"  ... and {len(self.unreadable) - 5} more")
        ratio = self.imbalance
        if ratio > _IMBALANCE_WARN:
            lines.append(
                f"Warning: classes are imbalanced (largest/smallest train class = {ratio:.1f}x); "
                "consider collecting more images for the small classes or weighting the loss"
            )
        return "\n".join(lines)


# -------- scanning


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in _IGNORED_DIRS


def _subdirs(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DatasetError(f"cannot list folder {folder}: {exc}") from exc
    return sorted((p for p in entries if p.is_dir() and not _ignored(p.name)), key=lambda p: p.name)


def _walk_files(folder: Path, links_out: list[Path] | None = None, root: Path | None = None) -> list[Path]:
    """Every non-hidden file below ``folder``, sorted.

    Folder links are followed only where they lead to a place inside ``folder`` (once: no
    loops); file links are followed unless they lead into another part of the dataset ``root``.
    Either would label another class's images with this one (a link to the dataset root,
    to a sibling class), so they are left out and appended to ``links_out``. Links to photos
    elsewhere on disk (a folder of links to your library) are kept.
    """
    out: list[Path] = []
    top = os.path.realpath(folder)
    dataset = os.path.realpath(root) if root is not None else top

    def inside(path: str, place: str) -> bool:
        return os.path.commonpath([place, path]) == place

    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop or two links to one folder
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for d in dirnames:
            if _ignored(d):
                continue
            if not inside(os.path.realpath(os.path.join(dirpath, d)), top):
                if links_out is not None:
                    links_out.append(Path(dirpath) / d)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            if f.startswith("."):  # hidden files include macOS '._name.jpg' resource forks, not images
                continue
            path = os.path.join(dirpath, f)
            target = os.path.realpath(path)
            if os.path.islink(path) and inside(target, dataset) and not inside(target, top):
                if links_out is not None:
                    links_out.append(Path(path))
                continue
            out.append(Path(path))
    return sorted(out)


def _short_reason(path: Path, exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _jpeg_is_complete(path: Path) -> bool:
    """True if the file ends with the JPEG end-of-image marker (a truncated file does not)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 2:
            return False
        f.seek(-2, os.SEEK_END)
        return f.read(2) == b"\xff\xd9"


def _check_image(path: Path) -> str | None:
    """Open ``path`` and check it cheaply; return None if it is fine, else a reason.

    Opening parses the header, which rejects non-images and unknown formats.
    JPEGs that end with their end-of-image marker pass straight away; others
    (truncated, or with data appended) are decoded at 1/8 scale to decide.
    PNGs have every chunk's checksum verified without decompressing. Other
    formats are decoded in full, exactly as ``load_image`` will do later.
    """
    try:
        with Image.open(path) as img:
            if img.format in ("JPEG", "MPO"):
                if not _jpeg_is_complete(path):
                    img.draft(None, (1, 1))  # decode in the DCT domain at 1/8 scale
                    load_image(img)
            elif img.format == "PNG":
                img.verify()
            else:
                load_image(img)
    except UnidentifiedImageError:
        return "not a recognised image file (wrong format or corrupt)"
    except Exception as exc:  # any failure means training could not read it either
        return _short_reason(path, exc)
    return None


def _check_images(paths: Sequence[Path]) -> dict[Path, str]:
    if not paths:
        return {}
    workers = max(1, min(_CHECK_THREADS, len(paths)))
    # PIL releases the GIL while decoding, and threads hide file-system latency.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(_check_image, paths))
    return {p: r for p, r in zip(paths, reasons, strict=True) if r is not None}


def _collect(class_dir: Path, links_out: list[Path] | None = None, root: Path | None = None,
             ) -> tuple[list[Path], list[Path]]:
    """(image files, non-image files) below one class folder."""
    files = _walk_files(class_dir, links_out, root)
    return [f for f in files if is_image_file(f)], [f for f in files if not is_image_file(f)]


def class_images(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """The images of a folder laid out one sub-folder per class, by class name (sorted), with the
    same rules as training: hidden and tool folders skipped, links out of a class folder not
    followed. Raises ``DatasetError`` when there are no class folders."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"image folder not found: {folder}")
    folder = folder.resolve()  # as scan_image_folder: links are judged against the real path
    return {name: _collect(d, root=folder)[0] for name, d in _class_dirs(folder).items()}


def _find_split_dirs(root: Path, dirs: list[Path]) -> tuple[Path | None, Path | None]:
    by_name = {d.name.lower(): d for d in dirs}
    train = by_name.get("train")
    vals = [by_name[n] for n in VAL_DIR_NAMES if n in by_name]
    if len(vals) > 1:
        names = ", ".join(f"{v.name}/" for v in vals)
        raise DatasetError(f"{root} has several validation folders ({names}); keep exactly one")
    val = vals[0] if vals else None
    expected = (
        f"Expected either {root}/train/<class>/... and {root}/val/<class>/... "
        f"(the validation folder may also be called 'valid' or 'validation'), "
        f"or the class folders directly in {root} to have them split automatically."
    )
    if train is not None and val is None:
        hint = ""
        if "test" in by_name:
            hint = " A test/ folder was found: rename it to val/ if it is meant for validation."
        raise DatasetError(f"{root} has a train/ folder but no val/ folder. {expected}{hint}")
    if val is not None and train is None:
        raise DatasetError(f"{root} has a {val.name}/ folder but no train/ folder. {expected}")
    return train, val


def _class_dirs(folder: Path) -> dict[str, Path]:
    dirs = _subdirs(folder)
    if not dirs:
        loose = [p for p in _walk_files(folder) if is_image_file(p) and p.parent == folder]
        hint = (
            f" It holds {len(loose)} image file(s) directly; put each class's images in its own sub-folder,"
            f" e.g. {folder}/cat/ and {folder}/dog/."
            if loose
            else f" Expected one sub-folder per class, e.g. {folder}/cat/ and {folder}/dog/."
        )
        raise DatasetError(f"no class folders found in {folder}.{hint}")
    return {d.name: d for d in dirs}


def _stratified_split(
    images: dict[str, list[Path]], classes: list[str], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    train: list[Sample] = []
    val: list[Sample] = []
    for label, cls in enumerate(classes):
        paths = sorted(images[cls])  # independent of the file system's listing order
        n = len(paths)
        n_val = round(n * val_fraction)
        n_val = min(max(n_val, 1), n - 1) if n >= 2 else 0
        # One generator per class (str seeds hash deterministically), so adding or
        # removing a class leaves the other classes' splits unchanged.
        order = list(range(n))
        random.Random(f"effnet_lab:{seed}:{cls}").shuffle(order)
        val_idx = set(order[:n_val])
        for i, p in enumerate(paths):
            (val if i in val_idx else train).append((p, label))
    return train, val


def scan_image_folder(
    root: str | os.PathLike,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    check_images: bool = True,
) -> tuple[list[Sample], list[Sample], FolderSummary]:
    """Find the classes and images under ``root`` and split them into train/val.

    Returns ``(train_samples, val_samples, summary)``; samples are ``(path,
    class_index)`` with classes indexed in sorted folder-name order. A folder
    without train/ and val/ sub-folders is split per class: ``val_fraction``
    of each class (at least one image when the class has two or more), chosen
    with ``seed``. With ``check_images`` every image is opened and verified;
    unreadable ones are left out and listed in ``summary.unreadable``. Raises
    ``DatasetError`` for any layout problem (missing folder, fewer than two
    classes, an empty class, train/val class mismatch).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root} (expected a folder of class sub-folders)")
    root = root.resolve()

    train_dir, val_dir = _find_split_dirs(root, _subdirs(root))
    auto_split = train_dir is None
    split_dirs: dict[str, dict[str, Path]] = {}
    if auto_split:
        split_dirs["all"] = _class_dirs(root)
        classes = sorted(split_dirs["all"])
    else:
        assert train_dir is not None and val_dir is not None
        split_dirs["train"] = _class_dirs(train_dir)
        split_dirs["val"] = _class_dirs(val_dir)
        classes = sorted(split_dirs["train"])

    where = root if auto_split else train_dir
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DatasetError(f"need at least 2 classes to train a classifier, found {found} in {where}")

    if not auto_split:
        assert train_dir is not None and val_dir is not None
        missing = [c for c in classes if c not in split_dirs["val"]]
        unknown = sorted(c for c in split_dirs["val"] if c not in split_dirs["train"])
        problems = []
        if missing:
            problems.append(f"class(es) {missing} are in {train_dir} but missing from {val_dir}")
        if unknown:
            problems.append(f"class(es) {unknown} are in {val_dir} but not in {train_dir}")
        if problems:
            raise DatasetError(
                "; ".join(problems) + ". The train and val folders must hold the same class sub-folders."
            )

    # Gather files per split and class.
    found: dict[str, dict[str, list[Path]]] = {}
    skipped: list[Path] = []
    links_out: list[Path] = []
    for split, dirs in split_dirs.items():
        found[split] = {}
        for cls in classes:
            images, others = _collect(dirs[cls], links_out, root)
            found[split][cls] = images
            skipped.extend(others)

    errors: dict[Path, str] = {}
    if check_images:
        every = [p for per_class in found.values() for paths in per_class.values() for p in paths]
        errors = _check_images(every)
        for per_class in found.values():
            for cls, paths in per_class.items():
                per_class[cls] = [p for p in paths if p not in errors]

    for split, per_class in found.items():
        for cls in classes:
            if per_class[cls]:
                continue
            folder = split_dirs[split][cls]
            bad = sum(1 for p in errors if folder in p.parents)
            detail = f"all {bad} of its image(s) are unreadable" if bad else "it contains no image files"
            raise DatasetError(
                f"class {cls!r} has no usable images: {detail} (folder {folder}; "
                f"image extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )

    if auto_split:
        train, val = _stratified_split(found["all"], classes, val_fraction, seed)
        if not val:
            raise DatasetError(f"splitting {root} leaves nothing to validate on: no class has the 2 or more images "
                               f"a split needs (val_fraction={val_fraction}); add images, or give train/ and val/")
    else:
        train = [(p, i) for i, c in enumerate(classes) for p in found["train"][c]]
        val = [(p, i) for i, c in enumerate(classes) for p in found["val"][c]]

    counts: dict[str, dict[str, int]] = {"train": dict.fromkeys(classes, 0), "val": dict.fromkeys(classes, 0)}
    for name, samples in (("train", train), ("val", val)):
        for _, label in samples:
            counts[name][classes[label]] += 1

    summary = FolderSummary(
        root=root,
        classes=classes,
        counts=counts,
        skipped_non_image=sorted(skipped),
        unreadable=sorted(errors),
        auto_split=auto_split,
        errors=dict(sorted(errors.items())),
        links_out=sorted(links_out),
    )
    return train, val, summary


# -------- dataset


class ImageFolderDataset(torch.utils.data.Dataset):
    """``(image tensor, label)`` pairs from a list of ``(path, label)`` samples.

    Images are loaded with ``load_image`` (RGB, EXIF-rotated) and passed through
    ``transform`` (default: ``to_tensor``). An image that fails to load (deleted
    or damaged after the scan) triggers one ``SkippedImageWarning`` per path and
    the next loadable sample is returned instead, so an epoch never crashes.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str | os.PathLike, int]],
        classes: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.classes: list[str] = list(classes)
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[Sample] = [(Path(p), int(y)) for p, y in samples]
        self.targets: list[int] = [y for _, y in self.samples]
        self.transform = transform
        bad_labels = sorted({y for y in self.targets if not 0 <= y < len(self.classes)})
        if bad_labels:
            raise DatasetError(f"labels {bad_labels} are out of range for {len(self.classes)} classes")
        self._bad: set[int] = set()  # indices that failed to load (warned about already)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> Image.Image | None:
        path = self.samples[index][0]
        try:
            return load_image(path)
        except (ImageLoadError, OSError) as exc:
            self._bad.add(index)
            warnings.warn(f"skipping unreadable image {path}: {exc}", SkippedImageWarning, stacklevel=3)
            return None

    def __getitem__(self, index: int) -> tuple[Any, int]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            img = self._load(i)
            if img is not None:
                x = self.transform(img) if self.transform is not None else TF.to_tensor(img)
                return x, self.targets[i]
        raise DatasetError(f"none of the {n} images in this dataset could be loaded")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {len(self.classes)} classes)"


def image_folder_datasets(
    root: str | os.PathLike,
    train_transform: Callable[[Image.Image], Any] | None,
    val_transform: Callable[[Image.Image], Any] | None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    check_images: bool = True,
) -> tuple[ImageFolderDataset, ImageFolderDataset, FolderSummary]:
    """Scan ``root`` (see ``scan_image_folder``) and build the train and val datasets."""
    train, val, summary = scan_image_folder(root, val_fraction=val_fraction, seed=seed, check_images=check_images)
    return (
        ImageFolderDataset(train, summary.classes, train_transform),
        ImageFolderDataset(val, summary.classes, val_transform),
        summary,
    )
