"""Does progressive learning help at our scale? EfficientNetV2's Algorithm 1 against a fixed image
size, same epochs, same seeds, same everything else: the time training takes and the accuracy at
the end.

Two experiments, both on CPU-sized problems:

    fashion   a small V2-style network (V2-B0's table at width and depth 0.5, stem stride 1) trained
              from scratch on 5,000 Fashion-MNIST images, scored on all 10,000 test images;
              fixed 28 px against 14 → 28 px in 4 stages, 8 epochs
    demo      pretrained Lite0 fine-tuned on the demo photos (last 2 stages and head, as notebook
              6), scored on its 37 validation photos; fixed 128 px against 64 → 128 px in 2 stages,
              4 epochs

A third arm, "progressive-same-time", trains progressively for 50 % more epochs: about the
fixed arm's training time where the small images do save time, which is how the V2 paper compares
(accuracy for the training time spent).

Validation always runs at the final size. A network still in an early stage is scored at a size
it has not trained at, so its accuracy mid-run is low (BatchNorm's statistics and the filters' scale
belong to the small images): the comparison that means something is at the end.

    python -m effnet_lab.lab.studies.progressive --experiment fashion --seeds 3 --out results.jsonl

Each finished run is appended to the JSONL file as one line (with the command, the hardware and
its per-epoch history); rerunning the same command skips the runs already there.
"""

from __future__ import annotations

import logging
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from ...data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_fashion_mnist
from ...data.resources import data_path
from ...model.network import EfficientNet
from ...paper.architecture import V2_B0, EfficientNetConfig
from ...train import Trainer
from ...train.config import OneLineParser
from .scaling import append_result, hardware, read_results

log = logging.getLogger(__name__)

# V2-B0's table for 28-px inputs: the stem keeps the full image (stride 1), so 28 px ends on 2×2
# and the first stage's 14 px on 1×1.
V2_28PX: EfficientNetConfig = V2_B0.scaled(width=0.5, depth=0.5, resolution=28, stem_stride=1, dropout=0.2)


@dataclass(frozen=True)
class Experiment:
    name: str
    epochs: int
    size: int
    progressive: str  # START:END
    stages: int
    settings: tuple[tuple[str, Any], ...]  # Trainer settings shared by both arms


EXPERIMENTS: dict[str, Experiment] = {
    "fashion": Experiment("fashion", 8, 28, "14:28", 4, (
        ("batch_size", 128), ("lr", 4e-3), ("backbone_lr", 4e-3), ("weight_decay", 0.05), ("warmup_epochs", 1.0),
        ("freeze_bn_stats", False), ("strategy", "full"))),
    "demo": Experiment("demo", 4, 128, "64:128", 2, (
        ("batch_size", 16), ("lr", 1e-3), ("strategy", "partial"), ("train_stages", 2), ("pretrained", True))),
}
ARMS = ("fixed", "progressive", "progressive-same-time")
COMMITTED = ("studies", "progressive-cpu", "results.jsonl")  # data/studies/…: the runs notebook 09 shows
LONGER = 1.5  # the third arm's epochs, relative to the others
FASHION_TRAIN_PER_CLASS = 500


def _fashion_datasets() -> tuple[TensorDataset, TensorDataset]:
    def tensors(split):
        x = (split.images.float() / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
        return TensorDataset(x[:, None], split.labels)

    return (tensors(load_fashion_mnist("train").subset(FASHION_TRAIN_PER_CLASS)),
            tensors(load_fashion_mnist("test")))


def build_trainer(experiment: Experiment, arm: str, seed: int) -> Trainer:
    """One run: the experiment's shared settings, the arm's image sizes."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    epochs = round(experiment.epochs * LONGER) if arm == "progressive-same-time" else experiment.epochs
    settings = dict(experiment.settings, epochs=epochs, img_size=experiment.size, seed=seed,
                    progress=False, workers=0, deterministic=True)
    if arm != "fixed":
        settings.update(progressive=experiment.progressive, progressive_stages=experiment.stages)
    if experiment.name == "fashion":
        torch.manual_seed(seed)  # the initial weights: the same for both arms of a seed
        model = EfficientNet(V2_28PX, num_classes=len(FASHION_MNIST_CLASSES), in_chans=1)
        return Trainer(model=model, data=_fashion_datasets(), class_names=list(FASHION_MNIST_CLASSES), **settings)
    return Trainer(model="efficientnet_lite0", data=str(data_path("demo")), **settings)


def committed_results() -> Path:
    """The results file of the runs notebook 09 shows (its README gives the commands)."""
    return data_path(*COMMITTED)


def run_key(experiment: str, arm: str, seed: int) -> str:
    return f"{experiment}/{arm}/seed{seed}"


def run_one(experiment: Experiment, arm: str, seed: int) -> dict[str, Any]:
    trainer = build_trainer(experiment, arm, seed)
    trainer.fit()
    h = trainer.history
    return dict(key=run_key(experiment.name, arm, seed), experiment=experiment.name, arm=arm, seed=seed,
                epochs=len(h),
                train_time_s=sum(e.time_s for e in h), final_val_acc=h[-1].val_acc,
                history=[dict(epoch=e.epoch, train_size=e.train_size, time_s=e.time_s, train_acc=e.train_acc,
                              val_acc=e.val_acc, val_loss=e.val_loss) for e in h],
                val_images=len(trainer.val_set), train_images=len(trainer.train_set))


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per experiment and arm: final accuracy and training time, mean ± std over seeds; and the
    progressive arm against the fixed one (speed-up of the mean times, accuracy difference)."""
    out = []
    for name in sorted({r["experiment"] for r in rows}):
        arms = {}
        for arm in ARMS:
            runs = [r for r in rows if r["experiment"] == name and r["arm"] == arm]
            if not runs:
                continue
            acc = [100 * r["final_val_acc"] for r in runs]
            time_s = [r["train_time_s"] for r in runs]
            arms[arm] = dict(experiment=name, arm=arm, seeds=len(runs), acc_mean=statistics.mean(acc),
                             acc_std=statistics.stdev(acc) if len(acc) > 1 else 0.0,
                             time_mean=statistics.mean(time_s), time_std=statistics.stdev(time_s) if len(runs) > 1
                             else 0.0)
        fixed = arms.get("fixed")
        for arm, prog in arms.items():
            if fixed is not None and arm != "fixed":
                prog["speedup"] = fixed["time_mean"] / prog["time_mean"]
                prog["acc_delta"] = prog["acc_mean"] - fixed["acc_mean"]
                prog["combined_std"] = (fixed["acc_std"] ** 2 + prog["acc_std"] ** 2) ** 0.5
        out += arms.values()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m effnet_lab.lab.studies.progressive", description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", choices=sorted(EXPERIMENTS), required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, help="override the experiment's epochs (smoke tests)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), metavar="ARM",
                   help=f"which arms to run (default all: {', '.join(ARMS)})")
    p.add_argument("--out", type=Path, required=True, help="JSONL results file (finished runs are skipped)")
    a = p.parse_args(argv)
    if a.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 1
    experiment = EXPERIMENTS[a.experiment]
    if a.epochs is not None:
        if a.epochs < experiment.stages:
            print(f"error: --epochs must be at least the {experiment.stages} progressive stages", file=sys.stderr)
            return 1
        experiment = Experiment(**{**experiment.__dict__, "epochs": a.epochs})
    done = {r["key"] for r in read_results(a.out)}
    command = " ".join(["python -m effnet_lab.lab.studies.progressive", *(sys.argv[1:] if argv is None else argv)])
    for seed in range(a.seeds):
        for arm in [name for name in ARMS if name in a.arms]:  # alternating: a slow patch of the machine hits every arm
            if run_key(experiment.name, arm, seed) in done:
                continue
            row = run_one(experiment, arm, seed)
            row.update(command=command, hardware=hardware(torch.device("cpu")),
                       sizes=f"{experiment.size}" if arm == "fixed" else experiment.progressive)
            append_result(a.out, row)
            print(f"{row['key']}: {100 * row['final_val_acc']:.2f} % in {row['train_time_s']:.1f} s of training")
    for s in summarize([r for r in read_results(a.out) if r["experiment"] == experiment.name]):
        extra = (f"; ×{s['speedup']:.2f} faster, {s['acc_delta']:+.2f} points (combined std {s['combined_std']:.2f})"
                 if "speedup" in s else "")
        print(f"{s['experiment']} {s['arm']:<22} {s['acc_mean']:.2f} ± {s['acc_std']:.2f} % "
              f"in {s['time_mean']:.1f} ± {s['time_std']:.1f} s ({s['seeds']} seeds){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
