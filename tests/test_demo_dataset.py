"""The shipped demo dataset (data/demo) is what data/build_demo_dataset.py says it is."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"


def _builder():
    spec = importlib.util.spec_from_file_location("build_demo_dataset", ROOT / "data" / "build_demo_dataset.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _sources() -> list[dict[str, str]]:
    with open(DEMO / "sources.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_files_on_disk_are_exactly_the_listed_sources() -> None:
    rows = _sources()
    listed = {(r["split"], r["class"], r["file"]) for r in rows}
    on_disk = {(p.parts[-3], p.parts[-2], p.name) for p in DEMO.glob("*/*/*") if p.is_file()}
    assert on_disk == listed
    assert len(listed) == len(rows)  # no duplicates


def test_no_drawings_or_renders_and_the_split_is_the_scripts() -> None:
    build = _builder()
    rows = _sources()
    for r in rows:
        rel = r["source"]
        assert rel not in build.EXCLUDED_STAMPS, rel
        assert not build.EXCLUDED_DIRS & set(rel.split("/")[:-1]), rel
        assert "thumb" not in rel.lower() and rel.endswith(".png"), rel
        assert rel.startswith(build.CLASSES[r["class"]] + "/"), rel
    # the seeded split of each class's source list, as the script makes it, gives the shipped split
    for cls in build.CLASSES:
        # in the order find_stamps lists them: sorted as paths
        mine = sorted((r for r in rows if r["class"] == cls), key=lambda r: Path(r["source"]))
        items = [build.Item(cls, Path(r["source"]), r["source"], r["file"]) for r in mine]
        train, val = build.split(items)
        assert {it.name for it in val} == {r["file"] for r in mine if r["split"] == "val"}, cls
        assert {it.name for it in train} == {r["file"] for r in mine if r["split"] == "train"}, cls


@pytest.mark.skipif(not Path("/usr/share/tuxpaint/stamps").is_dir(),
                    reason="needs the Debian package tuxpaint-stamps-default")
def test_rebuild_from_the_package_gives_the_shipped_images(tmp_path: Path) -> None:
    assert _builder().main(["--out", str(tmp_path)]) == 0
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.jpg"))
    assert rebuilt == sorted(p.relative_to(DEMO) for p in DEMO.rglob("*.jpg"))
    for rel in rebuilt:
        a = np.asarray(Image.open(tmp_path / rel), dtype=np.int16)
        b = np.asarray(Image.open(DEMO / rel), dtype=np.int16)
        assert a.shape == b.shape and np.abs(a - b).max() <= 2, rel  # other libjpeg builds may round differently
    assert (tmp_path / "sources.csv").read_text() == (DEMO / "sources.csv").read_text()
