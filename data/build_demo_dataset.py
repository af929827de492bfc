"""Rebuild the effnet_lab demo image-folder dataset (``data/demo``) from Tux Paint stamps.

The Debian package ``tuxpaint-stamps-default`` (GPL-2+, the Tux Paint project) ships real
cut-out photos as transparent PNGs.  This script takes the photos of four classes (mammals,
birds, fruit, flowers), leaves out drawings (``cartoon/``, ``toys/``, SVGs, thumbnails and a
few hand-picked PNGs that are drawings or renders), composites each onto one plain grey
background, downscales it (longer side <= 160 px, never upscaled), saves it as JPEG and makes
a seeded, stratified train/val split.  The output is deterministic: a rerun gives the same bytes.

    apt-get install -y --no-install-recommends tuxpaint-stamps-default
    python data/build_demo_dataset.py            # --source /usr/share/tuxpaint/stamps --out data/demo
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PACKAGE = "tuxpaint-stamps-default"
APT_COMMAND = f"apt-get install -y --no-install-recommends {PACKAGE}"
DEFAULT_SOURCE = Path("/usr/share/tuxpaint/stamps")
DEFAULT_OUT = Path(__file__).resolve().parent / "demo"
COPYRIGHT_FILE = Path(f"/usr/share/doc/{PACKAGE}/copyright")
GPL2_FILE = Path("/usr/share/common-licenses/GPL-2")

# class name -> stamps sub-folder (searched recursively)
CLASSES: dict[str, str] = {
    "birds": "animals/birds",
    "flowers": "plants/flowers",
    "fruit": "food/fruit",
    "mammals": "animals/mammals",
}
EXCLUDED_DIRS = frozenset({"cartoon", "toys"})
# PNGs outside cartoon/ and toys/ that are drawings or renders, not photos: every candidate of
# the four classes was looked at, enlarged, on the grey background (mouse and rat look rendered
# at a glance but show photographic fur and lighting when enlarged, so they stay)
EXCLUDED_STAMPS: dict[str, str] = {
    "animals/mammals/echidna.png": "black drawn silhouette",
    "animals/mammals/hedgehog.png": "cartoon drawing",
    "animals/mammals/aquatic/orca.png": "airbrushed illustration, flat shading",
    "animals/mammals/aquatic/whale.png": "painted render in violet-blue",
}

BACKGROUND = (235, 235, 235)  # light neutral grey, the same for every class
MAX_SIDE = 160
JPEG_QUALITY = 90
VAL_FRACTION = 0.25
MIN_VAL = 5
SEED = 0


@dataclass(frozen=True)
class Item:
    """One source stamp and where its JPEG goes."""

    cls: str
    source: Path  # absolute path of the stamp PNG
    rel: str  # path relative to the stamps folder
    name: str  # output file name


def sanitise(text: str) -> str:
    """Lower-case ``text`` and keep only ``[a-z0-9_-]`` (other runs become ``_``)."""
    return re.sub(r"[^a-z0-9-]+", "_", text.lower()).strip("_-")


def find_stamps(source: Path, cls: str, folder: str) -> list[Item]:
    """Photo stamps of one class, sorted by path, with deterministic output names."""
    root = source / folder
    items: list[Item] = []
    for png in sorted(root.rglob("*.png")):
        rel_in_class = png.relative_to(root)
        rel = png.relative_to(source).as_posix()
        if EXCLUDED_DIRS & set(rel_in_class.parts[:-1]) or "thumb" in png.stem.lower() or rel in EXCLUDED_STAMPS:
            continue
        name = sanitise(rel_in_class.with_suffix("").as_posix().replace("/", "__")) + ".jpg"
        items.append(Item(cls, png, rel, name))
    names = [it.name for it in items]
    if len(set(names)) != len(names):
        raise RuntimeError(f"output name collision in class {cls!r}")
    return items


def split(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """Seeded split of one class into (train, val), val ~VAL_FRACTION and at least MIN_VAL."""
    shuffled = list(items)
    random.Random(SEED).shuffle(shuffled)
    n_val = max(MIN_VAL, int(len(items) * VAL_FRACTION + 0.5))
    if n_val >= len(items):
        raise RuntimeError(f"class {items[0].cls!r} has only {len(items)} images")
    val = sorted(shuffled[:n_val], key=lambda it: it.name)
    train = sorted(shuffled[n_val:], key=lambda it: it.name)
    return train, val


def convert(src: Path, dst: Path) -> None:
    """Composite ``src`` onto BACKGROUND, downscale to MAX_SIDE, write a baseline JPEG."""
    with Image.open(src) as im:
        rgba = im.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    canvas.alpha_composite(rgba)
    rgb = canvas.convert("RGB")
    scale = MAX_SIDE / max(rgb.size)
    if scale < 1:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    rgb.save(dst, "JPEG", quality=JPEG_QUALITY)


def clear_split_dir(path: Path) -> None:
    """Remove a previous ``train``/``val`` folder, refusing if it holds anything but JPEGs."""
    if not path.exists():
        return
    stray = [p for p in path.rglob("*") if p.is_file() and p.suffix != ".jpg"]
    if stray:
        raise SystemExit(f"refusing to delete {path}: it holds non-JPEG files, e.g. {stray[0]}")
    shutil.rmtree(path)


def package_version() -> str:
    """Installed version of PACKAGE according to dpkg, or 'unknown'."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def write_licence(out: Path, rows: list[tuple[str, Item]]) -> None:
    """Write COPYING (GPL-2 text), LICENSE.md (credit, changes, rebuild) and sources.csv."""
    if GPL2_FILE.is_file():
        shutil.copyfile(GPL2_FILE, out / "COPYING")
    copyright_text = COPYRIGHT_FILE.read_text() if COPYRIGHT_FILE.is_file() else "(copyright file not found)\n"
    # the stanzas that cover the stamps themselves: header, "Files: *" and the licence text
    stanzas = [s for s in copyright_text.strip().split("\n\n") if not s.startswith("Files: debian/")]
    excerpt = "\n\n".join(s.rstrip() for s in stanzas)
    excluded = "\n".join(f"  - `{rel}` ({why})" for rel, why in EXCLUDED_STAMPS.items())
    (out / "LICENSE.md").write_text(
        f"""# Demo dataset: licence and provenance

The images in `train/` and `val/` are derived from photo stamps of **Tux Paint**
(<https://tuxpaint.org/>), as packaged by Debian in `{PACKAGE}` (version {package_version()}).
Credit: the Tux Paint project (stamps by Bill Kendrick and the Tux Paint contributors).

## Licence

GNU General Public License, version 2 or (at your option) any later version (GPL-2+).
The full GPL-2 text is in [`COPYING`](COPYING) (copied from `/usr/share/common-licenses/GPL-2`).
The derived images in this folder are distributed under the same licence.

Relevant lines of the Debian copyright file (`/usr/share/doc/{PACKAGE}/copyright`):

```
{excerpt}
```

## How the images were modified

- Selected the PNG photo stamps under `animals/mammals`, `animals/birds`, `food/fruit` and
  `plants/flowers` of `/usr/share/tuxpaint/stamps`, leaving out `cartoon/` and `toys/`
  folders, SVG drawings, thumbnails and these PNGs, which are drawings or renders rather than photos:
{excluded}
- Composited each transparent PNG onto a plain light-grey background RGB{BACKGROUND}
  (the same for all classes).
- Downscaled (Lanczos, aspect ratio kept) so the longer side is at most {MAX_SIDE} px;
  smaller stamps were not upscaled.
- Re-encoded as JPEG, quality {JPEG_QUALITY}.
- Split per class into train/val with seed {SEED} (~{VAL_FRACTION:.0%} val, at least {MIN_VAL} per class).
  `sources.csv` maps every JPEG to its source stamp.

## Rebuild

```
{APT_COMMAND}
python data/build_demo_dataset.py --source /usr/share/tuxpaint/stamps --out data/demo
```
"""
    )
    lines = ["split,class,file,source"] + [f"{s},{it.cls},{it.name},{it.rel}" for s, it in rows]
    (out / "sources.csv").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="Tux Paint stamps folder (%(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (%(default)s)")
    args = parser.parse_args(argv)
    source: Path = args.source
    out: Path = args.out

    missing = [f for f in CLASSES.values() if not (source / f).is_dir()]
    if missing:
        print(
            f"error: Tux Paint stamps not found under {source} (missing {', '.join(missing)}).\n"
            f"Install the Debian package first:\n    {APT_COMMAND}\n"
            "or pass --source pointing at its stamps folder.",
            file=sys.stderr,
        )
        return 1

    rows: list[tuple[str, Item]] = []
    for cls, folder in CLASSES.items():
        train, val = split(find_stamps(source, cls, folder))
        rows += [("train", it) for it in train] + [("val", it) for it in val]

    out.mkdir(parents=True, exist_ok=True)
    for split_name in ("train", "val"):
        clear_split_dir(out / split_name)
    for split_name, it in rows:
        convert(it.source, out / split_name / it.cls / it.name)
    write_licence(out, rows)

    print(f"{'class':<10}{'train':>7}{'val':>6}")
    for cls in CLASSES:
        n_train = sum(1 for s, it in rows if it.cls == cls and s == "train")
        n_val = sum(1 for s, it in rows if it.cls == cls and s == "val")
        print(f"{cls:<10}{n_train:>7}{n_val:>6}")
    n_train = sum(1 for s, _ in rows if s == "train")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{'total':<10}{n_train:>7}{len(rows) - n_train:>6}")
    print(f"wrote {len(rows)} JPEGs to {out} ({total / 1e6:.2f} MB in all, incl. licence files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
