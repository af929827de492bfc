"""Exercises for notebooks/06_finetuning.ipynb. Every answer comes from the training engine
itself: a DataLoader over the demo dataset, a `Trainer` with the strategy applied, and the
learning-rate scheduler stepped through a whole run."""

from __future__ import annotations

from typing import Any

from . import exercise

DEMO_BATCH = 16  # what the notebook trains with on a CPU


def _trainer(**overrides: Any):
    """A Trainer on the demo dataset, built quietly (no weights loaded, no image check)."""
    from ...data.resources import data_path
    from ...train import Trainer

    opts: dict[str, Any] = dict(
        data=str(data_path("demo")),
        model="efficientnet_lite0",
        pretrained=False,
        batch_size=DEMO_BATCH,
        img_size=128,
        device="cpu",
        workers=0,
        progress=False,
        check_images=False,
    )
    opts.update(overrides)
    return Trainer(**opts)


@exercise(
    "finetune.steps_per_epoch",
    "The demo dataset has 109 training images. With batch_size=16 (and drop_last=False, as the "
    "Trainer's DataLoader has it), how many optimizer steps does one epoch take?",
    "One optimizer step per batch. The last batch is smaller but still counts: round up.",
    "ceil(109 / 16) = 7 batches: six of 16 images and a last one of 13. In code: "
    "len(trainer.train_loader), or len(DataLoader(train_set, batch_size=16)). The Trainer sizes "
    "its schedule with it: warm-up int(0.5 · 7) = 3 steps, 7 · epochs steps in all.",
)
def steps_per_epoch() -> int:
    from torch.utils.data import DataLoader

    from ...data.folders import image_folder_datasets
    from ...data.resources import data_path

    train_set, _, _ = image_folder_datasets(data_path("demo"), None, None, check_images=False)
    return len(DataLoader(train_set, batch_size=DEMO_BATCH, drop_last=False))


@exercise(
    "finetune.partial_params",
    "On the demo dataset (4 classes), how many parameters does efficientnet_lite0 train with "
    "strategy='partial' and train_stages=1 — the last stage, the head conv and the classifier? "
    "Give the exact integer.",
    "Build it: Trainer(data=..., strategy='partial', train_stages=1, pretrained=False) and sum "
    "p.numel() over trainer.model.parameters() with p.requires_grad. By hand: the last stage is "
    "one MBConv6 k3 block 192 → 1152 → 320 without SE (Lite), the head a 1×1 conv 320 → 1280 with "
    "BatchNorm, the classifier 1280 · 4 + 4.",
    "trainer = Trainer(data=data_path('demo'), strategy='partial', train_stages=1, pretrained=False)\n"
    "sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)\n\n"
    "By hand (BatchNorm has a weight and a bias per channel):\n"
    "  last stage: expand 192·1152 + BN 2·1152, depthwise 9·1152 + BN 2·1152,\n"
    "              project 1152·320 + BN 2·320                      = 605,440\n"
    "  head:       320·1280 + BN 2·1280                             = 412,160\n"
    "  classifier: 1280·4 + 4                                       =   5,124\n"
    "  total                                                          1,022,724\n"
    "About 30 % of the 3.38M parameters of a 4-class Lite0, in one of its 16 blocks plus the "
    "head: the last layers are the widest.",
)
def partial_params() -> int:
    trainer = _trainer(strategy="partial", train_stages=1)
    return sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)


@exercise(
    "finetune.last_lr",
    "A run on the demo dataset with epochs=2, batch_size=16, lr=3e-3, warmup_epochs=0.5 and "
    "min_lr_ratio=0.01. What learning rate does the classifier get in the very last optimizer "
    "step of the run? (3 significant digits are enough.)",
    "Count the steps first: T = 2 · 7 = 14 steps (0 … 13) and W = int(0.5 · 7) = 3 warm-up steps. "
    "The last step is t = 13; put progress p = (t − W) / (T − W) into "
    "lr · (m + (1 − m) · ½ · (1 + cos πp)).",
    "T = 14, W = 3, t = 13 → p = 10/11 ≈ 0.909\n"
    "factor = 0.01 + 0.99 · ½ · (1 + cos(π · 10/11)) ≈ 0.0301\n"
    "lr = 3e-3 · 0.0301 ≈ 9.02e-5\n\n"
    "In code: trainer = Trainer(data=..., epochs=2, lr=3e-3, batch_size=16); step "
    "trainer.scheduler 13 times and read trainer.optimizer.param_groups (the 'head' group). "
    "The schedule never reaches min_lr_ratio itself: that would be step T.",
    tolerance=5e-3,
)
def last_lr() -> float:
    trainer = _trainer(epochs=2, lr=3e-3, warmup_epochs=0.5, min_lr_ratio=0.01, strategy="linear")
    total = trainer.config.epochs * len(trainer.train_loader)
    for _ in range(total - 1):  # the LR in use at step t is the one after t scheduler steps
        trainer.optimizer.step()  # no gradients: nothing moves, but the order stays as in training
        trainer.scheduler.step()
    return next(g["lr"] for g in trainer.optimizer.param_groups if g["name"] == "head")
