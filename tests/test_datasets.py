"""Image-folder scanning and datasets: layouts, the stratified split, bad files, errors."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from effnet_lab.data import folders as ds
from effnet_lab.data.folders import (
    IMAGE_EXTENSIONS,
    DatasetError,
    FolderSummary,
    ImageFolderDataset,
    SkippedImageWarning,
    image_folder_datasets,
    scan_image_folder,
)
from effnet_lab.data.transforms import create_transform


def make_image(path: Path, seed: int = 0, size: tuple[int, int] = (16, 12)) -> Path:
    """Save a small noise image; the format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def make_class(folder: Path, n: int, ext: str = ".png", start: int = 0) -> list[Path]:
    return [make_image(folder / f"img_{i:03d}{ext}", seed=i) for i in range(start, start + n)]


def rel(samples: list[tuple[Path, int]], root: Path) -> list[tuple[str, int]]:
    return [(p.relative_to(root).as_posix(), y) for p, y in samples]


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    """root/<class>/ with 10, 7 and 2 images; class names chosen to test sort order."""
    root = tmp_path / "flat"
    make_class(root / "dog", 10)
    make_class(root / "Cat", 7, ext=".jpg")
    make_class(root / "bird", 2, ext=".bmp")
    return root


@pytest.fixture
def split(tmp_path: Path) -> Path:
    root = tmp_path / "split"
    for name, n_train, n_val in (("ants", 5, 2), ("bees", 4, 3)):
        make_class(root / "train" / name, n_train)
        make_class(root / "val" / name, n_val, start=100)
    return root


# -------- layouts


def test_single_layout_auto_split(flat: Path) -> None:
    train, val, summary = scan_image_folder(flat)
    root = flat.resolve()
    assert summary.root == root and summary.auto_split
    assert summary.classes == ["Cat", "bird", "dog"]  # sorted(), as ImageFolder does
    # round(n * 0.2), but at least one val image for a class of >= 2
    assert summary.counts == {"train": {"Cat": 6, "bird": 1, "dog": 8}, "val": {"Cat": 1, "bird": 1, "dog": 2}}
    assert len(train) == 15 and len(val) == 4
    all_files = sorted(p for p in root.rglob("*") if p.is_file())
    assert sorted(p for p, _ in train + val) == all_files  # disjoint and complete
    for p, y in train + val:
        assert summary.classes[y] == p.parent.name
    assert summary.skipped_non_image == [] and summary.unreadable == []


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_split_layout(split: Path, val_name: str) -> None:
    if val_name != "val":
        (split / "val").rename(split / val_name)
    train, val, summary = scan_image_folder(split)
    assert not summary.auto_split
    assert summary.classes == ["ants", "bees"]
    assert summary.counts == {"train": {"ants": 5, "bees": 4}, "val": {"ants": 2, "bees": 3}}
    assert all(p.parts[-3] == "train" for p, _ in train)
    assert all(p.parts[-3] == val_name for p, _ in val)
    assert [y for _, y in val] == [0, 0, 1, 1, 1]


def test_nested_files_hidden_entries_and_extensions(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_class(root / "a", 3)
    make_image(root / "a" / "deeper" / "more" / "x.png")
    make_image(root / "a" / "UPPER.JPG")
    make_image(root / "a" / "photo.JPEG")
    make_class(root / "b", 3, ext=".webp")
    make_image(root / "b" / "anim.gif")
    make_image(root / "b" / "scan.tiff")
    make_image(root / ".ipynb_checkpoints" / "stray.png")  # hidden folder: not a class
    make_image(root / "a" / ".hidden_dir" / "y.png")  # hidden folder inside a class: ignored
    (root / "a" / "._resource_fork.jpg").write_bytes(b"\0" * 10)  # macOS junk: hidden, ignored
    (root / "a" / ".DS_Store").write_bytes(b"junk")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "b" / "labels.csv").write_text("x,y")
    (root / "b" / "README").write_text("no extension")
    (root / "readme.md").write_text("loose file at the top: not in any class")

    train, val, summary = scan_image_folder(root)
    assert summary.classes == ["a", "b"]
    names = {p.name for p, _ in train + val}
    assert {"x.png", "UPPER.JPG", "photo.JPEG", "anim.gif", "scan.tiff"} <= names
    assert not names & {"stray.png", "y.png", "._resource_fork.jpg"}
    assert summary.counts["train"]["a"] + summary.counts["val"]["a"] == 6
    assert summary.counts["train"]["b"] + summary.counts["val"]["b"] == 5
    assert sorted(p.name for p in summary.skipped_non_image) == ["README", "labels.csv", "notes.txt"]
    assert summary.unreadable == []
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"} == set(IMAGE_EXTENSIONS)


# -------- the automatic split


def _reversed_walk(real_walk):
    def walk(top, *args, **kwargs):
        for dirpath, dirnames, filenames in real_walk(top, *args, **kwargs):
            dirnames.reverse()
            yield dirpath, dirnames, filenames[::-1]

    return walk


def test_auto_split_is_deterministic_and_seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two copies of the same folder, files created in opposite orders.
    a, b = tmp_path / "a", tmp_path / "b"
    for cls in ("x", "y"):
        for i in range(20):
            make_image(a / cls / f"{i:02d}.png", seed=i)
        for i in reversed(range(20)):
            make_image(b / cls / f"{i:02d}.png", seed=i)

    def split_of(root: Path, seed: int) -> tuple[list, list]:
        train, val, _ = scan_image_folder(root, seed=seed, check_images=False)
        return rel(train, root.resolve()), rel(val, root.resolve())

    first = split_of(a, 0)
    assert split_of(a, 0) == first
    assert split_of(b, 0) == first
    monkeypatch.setattr(ds.os, "walk", _reversed_walk(os.walk))  # the listing order must not matter
    assert split_of(a, 0) == first
    monkeypatch.undo()
    other = split_of(a, 1)
    assert other != first
    assert sorted(other[0] + other[1]) == sorted(first[0] + first[1])


def test_auto_split_is_stratified(tmp_path: Path) -> None:
    root = tmp_path / "data"
    sizes = {"big": 50, "mid": 20, "small": 3, "two": 2, "one": 1}
    for cls, n in sizes.items():
        make_class(root / cls, n)
    _, val, summary = scan_image_folder(root, val_fraction=0.3, check_images=False)
    assert summary.counts["val"] == {"big": 15, "mid": 6, "one": 0, "small": 1, "two": 1}
    for cls, n in sizes.items():
        assert summary.counts["train"][cls] + summary.counts["val"][cls] == n
        assert summary.counts["train"][cls] >= 1  # never all in val
    for frac in (0.1, 0.5):
        _, _, s = scan_image_folder(root, val_fraction=frac, check_images=False)
        assert s.counts["val"]["big"] == round(50 * frac)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_bad_val_fraction(flat: Path, frac: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        scan_image_folder(flat, val_fraction=frac)


# -------- corrupt files


def _corrupt_files(cls_dir: Path) -> dict[str, Path]:
    good = make_image(cls_dir / "good.jpg", size=(64, 48))
    data = good.read_bytes()
    truncated_jpg = cls_dir / "truncated.jpg"
    truncated_jpg.write_bytes(data[: len(data) // 2])
    text_png = cls_dir / "text.png"
    text_png.write_text("this is not a png at all")
    png = make_image(cls_dir / "tmp.png", size=(64, 48))
    truncated_png = cls_dir / "truncated.png"
    truncated_png.write_bytes(png.read_bytes()[:-40])
    png.unlink()
    empty = cls_dir / "empty.gif"
    empty.write_bytes(b"")
    return {"truncated_jpg": truncated_jpg, "text_png": text_png, "truncated_png": truncated_png, "empty": empty}


def test_corrupt_images_reported_and_skipped(flat: Path) -> None:
    bad = _corrupt_files(flat / "dog")
    train, val, summary = scan_image_folder(flat)
    expected = sorted(p.resolve() for p in bad.values())
    assert summary.unreadable == expected
    used = {p for p, _ in train + val}
    assert not used & set(expected)
    assert (flat / "dog" / "good.jpg").resolve() in used
    text = str(summary)
    assert "4 unreadable" in text
    for p in bad.values():
        assert p.name in text
    assert all(summary.errors[p] for p in expected)
    # Without checking, the files are kept (and the dataset copes with them later).
    train, val, summary = scan_image_folder(flat, check_images=False)
    assert summary.unreadable == []
    assert set(expected) <= {p for p, _ in train + val}


def test_unreadable_paths_listed_at_most_five(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_class(root / "a", 3)
    make_class(root / "b", 3)
    for i in range(7):
        (root / "b" / f"bad_{i}.png").write_text("nope")
    _, _, summary = scan_image_folder(root)
    text = str(summary)
    assert len(summary.unreadable) == 7
    assert text.count("unreadable: ") == 5 and "and 2 more" in text


def test_file_corrupted_after_scan_is_skipped_with_warning(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_class(root / "a", 4)
    make_class(root / "b", 4)
    train, _, summary = scan_image_folder(root)
    dataset = ImageFolderDataset(train, summary.classes, create_transform(8))
    victim, label = dataset.samples[0]
    victim.write_bytes(b"corrupted after the scan")
    removed = dataset.samples[-1][0]
    removed.unlink()

    with pytest.warns(SkippedImageWarning, match=re.escape(str(victim))):
        x, y = dataset[0]
    assert x.shape == (3, 8, 8) and y == dataset.targets[1]  # the next sample instead
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once per path
        dataset[0]
    with pytest.warns(SkippedImageWarning, match=re.escape(str(removed))):
        dataset[len(dataset) - 1]  # wraps around to the first loadable sample

    loader = torch.utils.data.DataLoader(dataset, batch_size=3, shuffle=True)
    seen = sum(xb.shape[0] for xb, _ in loader)
    assert seen == len(dataset)


def test_dataset_with_nothing_loadable_raises(tmp_path: Path) -> None:
    paths = [tmp_path / "gone1.png", tmp_path / "gone2.png"]
    dataset = ImageFolderDataset([(paths[0], 0), (paths[1], 1)], ["a", "b"])
    with pytest.warns(SkippedImageWarning), pytest.raises(DatasetError, match="could be loaded"):
        dataset[0]


# -------- errors before training


def _single_class(root: Path) -> None:
    make_class(root / "only", 3)


def _empty_class(root: Path) -> None:
    make_class(root / "full", 3)
    (root / "hollow").mkdir(parents=True)
    (root / "hollow" / "notes.txt").write_text("x")


def _all_unreadable(root: Path) -> None:
    make_class(root / "full", 3)
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "a.jpg").write_text("x")


def _missing_from_val(root: Path) -> None:
    for c in ("ants", "bees", "wasps"):
        make_class(root / "train" / c, 2)
    for c in ("ants", "bees"):
        make_class(root / "val" / c, 2)


def _unknown_in_val(root: Path) -> None:
    for c in ("ants", "bees"):
        make_class(root / "train" / c, 2)
    for c in ("ants", "bees", "moths"):
        make_class(root / "val" / c, 2)


def _empty_val_class(root: Path) -> None:
    for c in ("ants", "bees"):
        make_class(root / "train" / c, 2)
    make_class(root / "val" / "ants", 2)
    (root / "val" / "bees").mkdir(parents=True)


def _train_only(root: Path) -> None:
    for c in ("ants", "bees"):
        make_class(root / "train" / c, 2)
        make_class(root / "test" / c, 2)


def _val_only(root: Path) -> None:
    for c in ("ants", "bees"):
        make_class(root / "validation" / c, 2)


def _loose_images(root: Path) -> None:
    make_class(root, 3)


def _two_val_folders(root: Path) -> None:
    for split in ("train", "val", "valid"):
        for c in ("ants", "bees"):
            make_class(root / split / c, 2)


def _train_without_classes(root: Path) -> None:
    (root / "train").mkdir(parents=True)
    make_class(root / "val" / "ants", 2)


@pytest.mark.parametrize(
    "build, patterns",
    [
        (None, [r"not found", r"{root}"]),
        ("file", [r"not a folder", r"{root}"]),
        (lambda r: r.mkdir(), [r"no class folders", r"{root}"]),
        (_loose_images, [r"no class folders", r"3 image file", r"own sub-folder"]),
        (_single_class, [r"at least 2 classes", r"'only'", r"{root}"]),
        (_empty_class, [r"'hollow'", r"no image files", r"hollow"]),
        (_all_unreadable, [r"'broken'", r"unreadable"]),
        (_missing_from_val, [r"wasps", r"missing from", r"val"]),
        (_unknown_in_val, [r"moths", r"not in .*train"]),
        (_empty_val_class, [r"'bees'", r"no image files", r"val.bees"]),
        (_train_only, [r"train/ folder but no val/", r"valid", r"test/ folder", r"{root}"]),
        (_val_only, [r"validation/ folder but no train/", r"{root}"]),
        (_two_val_folders, [r"several validation folders"]),
        (_train_without_classes, [r"no class folders", r"train"]),
    ],
)
def test_dataset_errors(tmp_path: Path, build, patterns: list[str]) -> None:
    root = tmp_path / "user_images"
    if build == "file":
        root.write_text("a file, not a folder")
    elif build is not None:
        build(root)
    with pytest.raises(DatasetError) as info:
        scan_image_folder(root)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern.replace("{root}", re.escape(str(root))), message), (pattern, message)
    assert isinstance(info.value, ValueError)


# -------- summary


def test_summary_string(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_class(root / "many", 20)
    make_class(root / "few", 3)
    (root / "few" / "notes.txt").write_text("x")
    (root / "many" / "broken.jpg").write_text("x")
    _, _, summary = scan_image_folder(root)
    text = str(summary)
    assert str(root.resolve()) in text
    assert "split automatically" in text
    assert re.search(r"few\s+2 train\s+1 val", text)
    assert re.search(r"many\s+16 train\s+4 val", text)
    assert "Skipped 1 non-image" in text and "1 unreadable" in text and "many/broken.jpg" in text
    assert summary.imbalance == 8.0
    assert "imbalanced" in text and "8.0x" in text
    assert len(text.splitlines()) <= 10

    balanced = FolderSummary(
        root=root, classes=["a", "b"], counts={"train": {"a": 4, "b": 3}, "val": {"a": 1, "b": 1}},
        skipped_non_image=[], unreadable=[], auto_split=False,
    )
    assert balanced.imbalance == pytest.approx(4 / 3)
    assert "imbalanced" not in str(balanced) and "separate train/ and val/" in str(balanced)


# -------- agreement with torchvision, datasets


def test_matches_torchvision_imagefolder(flat: Path, split: Path) -> None:
    train, val, summary = scan_image_folder(flat)
    reference = ImageFolder(str(flat))
    assert summary.classes == reference.classes
    assert {c: i for i, c in enumerate(summary.classes)} == reference.class_to_idx
    ours = sorted((str(p), y) for p, y in train + val)
    assert ours == sorted((str(Path(p).resolve()), y) for p, y in reference.samples)

    train, val, summary = scan_image_folder(split)
    for samples, folder in ((train, "train"), (val, "val")):
        ref = ImageFolder(str(split / folder))
        assert ref.classes == summary.classes
        assert sorted((str(p), y) for p, y in samples) == sorted((str(Path(p).resolve()), y) for p, y in ref.samples)


def test_image_folder_datasets(flat: Path) -> None:
    train_tf = create_transform(24, is_training=True)
    val_tf = create_transform(24)
    train_ds, val_ds, summary = image_folder_datasets(flat, train_tf, val_tf, val_fraction=0.25, seed=3)
    assert train_ds.classes == val_ds.classes == summary.classes
    assert train_ds.transform is train_tf and val_ds.transform is val_tf
    assert len(train_ds) + len(val_ds) == 19
    assert train_ds.targets == [y for _, y in train_ds.samples]
    assert train_ds.class_to_idx == {"Cat": 0, "bird": 1, "dog": 2}
    x, y = val_ds[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 24, 24) and y == val_ds.targets[0]
    xb, yb = next(iter(torch.utils.data.DataLoader(train_ds, batch_size=4)))
    assert xb.shape == (4, 3, 24, 24) and yb.dtype == torch.int64

    raw = ImageFolderDataset(train_ds.samples, train_ds.classes)  # no transform: plain [0, 1] tensor
    x, _ = raw[0]
    assert x.dtype == torch.float32 and x.shape[0] == 3 and 0 <= x.min() <= x.max() <= 1
    with pytest.raises(IndexError):
        raw[len(raw)]
    with pytest.raises(DatasetError, match="out of range"):
        ImageFolderDataset([(flat / "x.png", 5)], ["a", "b"])
