"""Rebuild data/fashion_mnist/: a stratified subset of Fashion-MNIST small enough to commit.

500 training and 100 test images per class (5,000 + 1,000), drawn with a fixed seed from the
full set (Debian's `dataset-fashion-mnist`, or any folder of the four IDX files), kept in the
original order and written in the original IDX format, gzipped, so torchvision's
`FashionMNIST` reads the subset exactly as it reads the full set. Deterministic: a rebuild
gives the same bytes.

    apt-get install -y --no-install-recommends dataset-fashion-mnist
    python data/build_fashion_mnist_subset.py          # --source /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
from pathlib import Path

import torch

from effnet_lab.data.fashion_mnist import DEBIAN_FOLDER, FILES, load_fashion_mnist, stratified_indices

OUT = Path(__file__).resolve().parent / "fashion_mnist"
PER_CLASS = {"train": 500, "test": 100}
SEED = 0


def idx_bytes(array: torch.Tensor) -> bytes:
    """The IDX format: magic (0, 0, type 0x08 = unsigned byte, number of dims), the sizes as
    big-endian int32, then the data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.dim()) + struct.pack(f">{array.dim()}i", *array.shape)
    return header + array.to(torch.uint8).contiguous().numpy().tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(DEBIAN_FOLDER), help="folder of the full set's IDX files")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        splits = {s: load_fashion_mnist(s, source=args.source) for s in FILES}
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for split, (images_name, labels_name) in FILES.items():
        data = splits[split]
        keep = stratified_indices(data.labels, PER_CLASS[split], SEED)
        for name, array in ((images_name, data.images[keep]), (labels_name, data.labels[keep])):
            path = args.out / f"{name}.gz"
            tmp = path.with_suffix(".gz.tmp")
            with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
                f.write(idx_bytes(array))
            tmp.replace(path)
        print(f"{split}: {len(keep)} images, {PER_CLASS[split]} per class -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
