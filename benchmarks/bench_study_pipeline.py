"""Training images/s of the scaling study's input pipeline against a plain DataLoader.

Both candidates train the study's baseline network (`B0_28PX`, 16-px inputs) with the same
AdamW step (`effnet_lab.train.loop.train_step`) and batch size on Fashion-MNIST's training images
with the same augmentation (shift by up to 2 px, horizontal flip, resize 28 → 16, normalise):

* **study**: `TensorBatches`, the dataset as one uint8 tensor, augmented a batch at a time;
* **DataLoader**: torchvision's `FashionMNIST` with per-sample transforms (RandomCrop(28,
  padding=2), RandomHorizontalFlip, Resize(16), ToTensor, Normalize) in a `DataLoader`,
  with 0 workers and with `--workers` workers.

Two measurements: fetching a batch alone (the pipeline's own speed), and fetching a batch
and training on it (what a study run sees; the target is on this one). Both models are
channels_last, as the study trains. Steps are interleaved one at a time
(benchlib.interleaved); ratios are of medians.

Usage: python benchmarks/bench_study_pipeline.py [--batch 256] [--rounds 5] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import itertools

import torch
from benchlib import interleaved, ratio_line
from torch.utils.data import DataLoader
from torchvision import transforms as T

from effnet_lab.data.fashion_mnist import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    fashion_mnist_dataset,
    load_fashion_mnist,
)
from effnet_lab.data.tensor_batches import TensorBatches
from effnet_lab.model.device import usable_device
from effnet_lab.model.network import EfficientNet
from effnet_lab.paper.architecture import B0_28PX
from effnet_lab.train.loop import to_device, train_step

TARGET = 2.0  # study pipeline / per-sample DataLoader, training images/s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default="auto", help="load_fashion_mnist source: auto | full | subset | folder")
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 steps (a smoke test)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.quick:
        a.rounds, a.iters = 2, 2
    device = usable_device(a.device)
    res = B0_28PX.resolution
    train = load_fashion_mnist("train", a.data)
    print(f"Fashion-MNIST train ({train.source}, {len(train)} images), batch {a.batch}, {res} px, device {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")

    per_sample = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip(), T.Resize(res),
                            T.ToTensor(), T.Normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD])])
    dataset = fashion_mnist_dataset("train", a.data, transform=per_sample)
    loaders = {
        "study": TensorBatches(train.images, train.labels, batch_size=a.batch, resolution=res, mean=FASHION_MNIST_MEAN,
                               std=FASHION_MNIST_STD, train=True, device=device),
        "DataLoader, 0 workers": DataLoader(dataset, a.batch, shuffle=True, drop_last=True),
        f"DataLoader, {a.workers} workers": DataLoader(dataset, a.batch, shuffle=True, drop_last=True,
                                                        num_workers=a.workers, persistent_workers=True),
    }
    fetch, train_steps = {}, {}
    for name, loader in loaders.items():
        torch.manual_seed(0)
        model = EfficientNet(B0_28PX, 10, 1).to(device, memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        batches = itertools.chain.from_iterable(itertools.repeat(loader))  # endless, epoch after epoch

        def next_batch(batches=batches) -> tuple[torch.Tensor, torch.Tensor]:
            return to_device(*next(batches), device, channels_last=True)

        def step(model=model, opt=opt, next_batch=next_batch) -> None:
            train_step(model, *next_batch(), opt, label_smoothing=0.1)

        fetch[name], train_steps[name] = next_batch, step
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for title, steps in (("batches only (the input pipeline)", fetch), ("batch + training step", train_steps)):
        rates = interleaved(steps, a.iters, a.rounds, warmup=2, batch=a.batch, sync=sync)
        print(f"-- {title}")
        for name, r in rates.items():
            print(f"{name:<24} {sorted(r)[len(r) // 2]:8.0f} images/s (median of {len(r)} steps)")
        for name in list(rates)[1:]:
            target = TARGET if steps is train_steps else None
            print(ratio_line(f"study / {name}, {title.split(' (')[0]}", rates["study"], rates[name], target))

if __name__ == "__main__":
    main()
