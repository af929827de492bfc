"""Fine-tune an EfficientNet on a folder of images: one call, one command, or step by step.

    from effnet_lab.train import finetune
    finetune("data/demo", model="efficientnet_lite0", epochs=3)

    python -m effnet_lab.train --data data/demo --model efficientnet_lite0 --pretrained \\
        --epochs 3 --batch-size 32 --lr 1e-3 --output runs/demo
    torchrun --nproc_per_node 2 -m effnet_lab.train ...      (DistributedDataParallel)

`Trainer` is the object underneath: `fit()` runs everything, or call `train_one_epoch()`,
`evaluate()` and `save_checkpoint()` yourself. Every epoch writes `last.pth` (and `best.pth`
when validation accuracy improves) atomically, plus `history.csv` / `history.json`.

Reproducibility: each epoch reseeds every random number generator from (seed, epoch), so
an interrupted run resumed from its last checkpoint ends with the same weights as a run
that was never interrupted (on CPU with `deterministic=True`, with or without loader workers).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from .architecture import config_to_dict
from .data import create_transform, resolve_data_config
from .datasets import FolderSummary, image_folder_datasets
from .registry import create_model
from .weights import load_checkpoint_file, save_atomic

STRATEGIES = ("linear", "partial", "full")


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to try."""


@dataclass
class TrainConfig:
    """Every setting of a fine-tuning run (saved inside its checkpoints)."""

    data: str  # root/train/<class>/*, root/val/<class>/*  or  root/<class>/* (split automatically)
    model: str = "efficientnet_lite0"
    pretrained: bool = True
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3  # for the new classifier
    backbone_lr: float | None = None  # for the pretrained layers; default lr / 10
    weight_decay: float = 0.01
    warmup_epochs: float = 0.5
    min_lr_ratio: float = 0.01  # cosine decays to lr · min_lr_ratio
    label_smoothing: float = 0.1
    drop_rate: float | None = None  # dropout before the classifier; default: the model's
    drop_path_rate: float = 0.1
    strategy: str = "full"  # linear (head only) | partial (last `train_stages` stages + head) | full
    train_stages: int = 2
    # Keep every BatchNorm's pretrained statistics. On small datasets updating them from a few
    # batches costs a lot of accuracy (demo data: 10–20 points after one epoch), so on by default.
    freeze_bn_stats: bool = True
    img_size: int | None = None  # default: the model's own input size
    scale: tuple[float, float] = (0.25, 1.0)  # RandomResizedCrop area range
    hflip: float = 0.5
    color_jitter: float = 0.2
    auto_augment: str | None = None  # randaugment | trivialaugment | augmix | autoaugment
    val_fraction: float = 0.2  # for a folder without train/ and val/
    seed: int = 0
    device: str | None = None  # cuda → mps → cpu when None
    amp: bool | None = None  # mixed precision; default on for CUDA
    channels_last: bool | None = None  # default on for CUDA
    compile: bool = False
    grad_checkpointing: bool = False
    workers: int | None = None  # DataLoader workers; default 0 on CPU, up to 8 on GPU
    output: str | None = None  # where checkpoints and history go; None: don't save
    resume: str | None = None  # a last.pth to continue from
    deterministic: bool = False
    progress: bool = True
    check_images: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        self.data = str(self.data)
        self.scale = tuple(self.scale)


# ----------------------------------------------------------------------------- helpers
def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR multiplier per step: linear warm-up from ~0, then cosine down to `min_ratio`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


class _Shard(Sampler[int]):
    """Every world_size-th sample, no padding: validation counts each image exactly once."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _EpochShuffle(Sampler[int]):
    """A permutation that depends only on (seed, epoch), split across DDP ranks."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        per_rank = math.ceil(self.n / self.world)
        order += order[: per_rank * self.world - self.n]  # pad so every rank has as many batches
        return iter(order[self.rank::self.world])

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)


# ----------------------------------------------------------------------------- the trainer
@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    images_per_s: float
    time_s: float


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    confusion: torch.Tensor  # [true class, predicted class] counts
    class_names: list[str] = field(default_factory=list)

    def per_class_accuracy(self) -> dict[str, float]:
        cm = self.confusion.double()
        acc = (cm.diag() / cm.sum(1).clamp(min=1)).tolist()
        return dict(zip(self.class_names, acc, strict=True))


class Trainer:
    def __init__(self, config: TrainConfig | None = None, **kwargs: Any):
        self.config = cfg = config or TrainConfig(**kwargs)
        self.rank, self.world = _distributed_setup()
        self.is_main = self.rank == 0
        self.device = pick_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        self.amp = cfg.amp if cfg.amp is not None else self.device.type == "cuda"
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else self.device.type == "cuda"
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=self.device.type != "cpu")
        seed_everything(cfg.seed)

        # model: pretrained backbone, new head sized to the data
        self.model = create_model(cfg.model, pretrained=cfg.pretrained, num_classes=1000,
                                  drop_rate=cfg.drop_rate, drop_path_rate=cfg.drop_path_rate)
        data_cfg = resolve_data_config(self.model, **({"img_size": cfg.img_size} if cfg.img_size else {}))
        self.data_config = data_cfg
        train_tf = create_transform(**data_cfg, is_training=True, scale=cfg.scale, hflip=cfg.hflip,
                                    color_jitter=cfg.color_jitter, auto_augment=cfg.auto_augment)
        val_tf = create_transform(**data_cfg)
        self.train_set, self.val_set, self.summary = image_folder_datasets(
            cfg.data, train_tf, val_tf, val_fraction=cfg.val_fraction, seed=cfg.seed, check_images=cfg.check_images)
        self.class_names: list[str] = list(self.summary.classes)
        self._log(str(self.summary))
        self.model.reset_classifier(len(self.class_names))
        self.model.pretrained_cfg["label_names"] = self.class_names
        self.model.pretrained_cfg.update(data_cfg)
        if cfg.grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        self._apply_strategy()
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

        # data
        workers = cfg.workers if cfg.workers is not None else (0 if self.device.type == "cpu" else
                                                                min(8, os.cpu_count() or 1))
        self.train_sampler = _EpochShuffle(len(self.train_set), cfg.seed, self.rank, self.world)
        pin = self.device.type == "cuda"
        # Workers are started afresh every epoch (not persistent): each then seeds its augmentation
        # from the generator reseeded for that epoch, so a resumed run draws the same crops.
        self.train_loader = DataLoader(self.train_set, cfg.batch_size, sampler=self.train_sampler,
                                       num_workers=workers, pin_memory=pin, drop_last=False)
        self.val_loader = DataLoader(self.val_set, cfg.batch_size, sampler=_Shard(len(self.val_set), self.rank,
                                                                                   self.world),
                                     num_workers=workers, pin_memory=pin)

        # optimisation: AdamW, no weight decay on biases and BatchNorm, separate head LR
        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=cfg.lr)
        steps = cfg.epochs * len(self.train_loader)
        warmup = int(cfg.warmup_epochs * len(self.train_loader))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(steps, warmup, cfg.min_lr_ratio))
        self.autocast_dtype = (torch.bfloat16 if self.device.type != "cuda" or torch.cuda.is_bf16_supported()
                               else torch.float16)
        # a grad scaler only for fp16 (bf16 has float32's range)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp and self.autocast_dtype == torch.float16)
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)

        self.epoch = 0  # epochs completed
        self.best_acc = -1.0
        self.history: list[EpochMetrics] = []
        self.output = Path(cfg.output) if cfg.output else None
        if cfg.resume:
            self.load_checkpoint(cfg.resume)

    # -- setup ------------------------------------------------------------------------------
    def _trainable_modules(self) -> list[nn.Module]:
        m, cfg = self.model, self.config
        if cfg.strategy == "full":
            return [m]
        head = [m.classifier]
        if cfg.strategy == "partial":
            k = max(0, min(cfg.train_stages, len(m.stages)))
            head = [*list(m.stages)[len(m.stages) - k:], m.head, m.classifier]
        return head

    def _apply_strategy(self) -> None:
        trainable = self._trainable_modules()
        self.model.requires_grad_(False)
        for mod in trainable:
            mod.requires_grad_(True)
        self._frozen_ids = {id(p) for p in self.model.parameters() if not p.requires_grad}

    def _set_train_mode(self) -> None:
        """Train mode for what trains; frozen parts keep eval mode so their BatchNorm
        statistics stay those of the pretrained network."""
        self.model.train()
        m = self.model
        for part in [m.stem, *(block for stage in m.stages for block in stage), m.head]:
            if not any(p.requires_grad for p in part.parameters()):
                part.eval()  # wholly frozen: no drop path, no BatchNorm updates
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d) and (self.config.freeze_bn_stats or not mod.weight.requires_grad):
                mod.eval()

    def _param_groups(self) -> list[dict]:
        cfg = self.config
        backbone_lr = cfg.backbone_lr if cfg.backbone_lr is not None else cfg.lr / 10
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            is_head = name.startswith("classifier.")
            decay = p.ndim > 1
            groups.setdefault((is_head, decay), []).append(p)
        return [{"params": ps, "lr": cfg.lr if head else backbone_lr,
                 "weight_decay": cfg.weight_decay if decay else 0.0,
                 "name": f"{'head' if head else 'backbone'}{'' if decay else '_no_decay'}"}
                for (head, decay), ps in sorted(groups.items())]

    def _log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    # -- one epoch ---------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.amp)

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return (images.to(self.device, non_blocking=True, memory_format=fmt),
                labels.to(self.device, non_blocking=True))

    def train_one_epoch(self) -> dict[str, float]:
        cfg = self.config
        epoch = self.epoch
        seed_everything(cfg.seed * 1_000 + epoch)  # augmentation, dropout, drop path: f(seed, epoch)
        self.train_sampler.set_epoch(epoch)
        self._set_train_mode()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, correct, count
        start = time.perf_counter()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (cfg.progress and self.is_main), unit="batch")
        for step, (images, labels) in enumerate(bar):
            images, labels = self._to_device(images, labels)
            logits, loss = self.train_step(images, labels, where=f"epoch {epoch + 1}, batch {step + 1}")
            self.scheduler.step()
            n = labels.shape[0]
            totals += torch.tensor([loss.item() * n, (logits.argmax(1) == labels).sum().item(), n],
                                   dtype=torch.float64, device=self.device)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        elapsed = time.perf_counter() - start
        totals = self._all_reduce(totals)
        return {"loss": (totals[0] / totals[2]).item(), "acc": (totals[1] / totals[2]).item(),
                "images_per_s": totals[2].item() / elapsed, "time_s": elapsed}

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, where: str = "this step"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a batch already on the device: forward under autocast,
        label-smoothed cross-entropy, backward (through the grad scaler), optimizer step.
        Returns (logits, loss). The LR schedule is stepped by the caller."""
        cfg = self.config
        try:
            with self._autocast():
                logits = self.net(images)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at {where}: training stopped. The last good checkpoint "
                    f"is {self._last_path() or '(none saved)'}. Try a lower --lr (now {cfg.lr:g}) or --no-amp.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        except torch.cuda.OutOfMemoryError:
            raise TrainingError(
                f"out of {self.device.type} memory at batch size {cfg.batch_size}: try "
                f"--batch-size {max(1, cfg.batch_size // 2)} (or --amp, --grad-checkpointing)") from None
        return logits, loss

    @torch.no_grad()
    def evaluate(self, loader: DataLoader | None = None) -> EvalResult:
        loader = loader or self.val_loader
        self.model.eval()
        k = len(self.class_names)
        confusion = torch.zeros(k, k, dtype=torch.float64, device=self.device)
        loss_sum = torch.zeros(1, dtype=torch.float64, device=self.device)
        for images, labels in loader:
            images, labels = self._to_device(images, labels)
            with self._autocast():
                logits = self.model(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
            idx = labels * k + logits.argmax(1)
            confusion += torch.bincount(idx, minlength=k * k).view(k, k).double()
        confusion = self._all_reduce(confusion)
        loss_sum = self._all_reduce(loss_sum)
        count = confusion.sum().clamp(min=1)
        return EvalResult((loss_sum / count).item(), (confusion.diag().sum() / count).item(),
                          confusion.cpu().long(), self.class_names)

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t

    # -- the whole run ------------------------------------------------------------------------
    def fit(self, until_epoch: int | None = None) -> list[EpochMetrics]:
        """Train from the current epoch to `config.epochs` (or stop after `until_epoch`)."""
        cfg = self.config
        last = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
        epochs = tqdm(range(self.epoch, last), desc="fine-tuning", unit="epoch",
                      disable=not (cfg.progress and self.is_main), initial=self.epoch, total=cfg.epochs)
        for _ in epochs:
            lr = max(g["lr"] for g in self.optimizer.param_groups)  # the head's
            train = self.train_one_epoch()
            result = self.evaluate()
            self.epoch += 1
            metrics = EpochMetrics(self.epoch, train["loss"], train["acc"], result.loss, result.accuracy, lr,
                                   train["images_per_s"], train["time_s"])
            self.history.append(metrics)
            improved = result.accuracy > self.best_acc
            self.best_acc = max(self.best_acc, result.accuracy)
            if self.output and self.is_main:
                self.save_checkpoint(self.output / "last.pth")
                if improved:
                    self.save_checkpoint(self.output / "best.pth")
                self.save_history()
            self._log(f"epoch {self.epoch}/{cfg.epochs}: train loss {train['loss']:.4f} acc {train['acc']:.3f} | "
                      f"val loss {result.loss:.4f} acc {result.accuracy:.3f} | "
                      f"{train['images_per_s']:.1f} img/s{' | best' if improved else ''}")
        return self.history

    # -- checkpoints ----------------------------------------------------------------------------
    def _last_path(self) -> Path | None:
        p = self.output / "last.pth" if self.output else None
        return p if p and p.exists() else None

    def checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "model_name": self.config.model,
            "model_config": config_to_dict(self.model.config),
            "data_config": {k: v for k, v in self.data_config.items()},
            "class_names": self.class_names,
            "epoch": self.epoch,
            "best_acc": self.best_acc,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "train_config": asdict(self.config),
            "history": [asdict(h) for h in self.history],
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        return save_atomic(self.checkpoint(), path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue a run: weights, optimizer, schedule, scaler, epoch, RNG and history."""
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise TrainingError(f"resume: checkpoint {str(path)!r} does not exist") from None
        except Exception:
            load_checkpoint_file(path)  # raises a CheckpointError that says what is wrong
            raise
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "class_names") if k not in raw]
        if missing:
            raise TrainingError(f"resume: {path} is not a training checkpoint (no {', '.join(missing)}); "
                                f"to start from its weights use create_model(..., checkpoint_path=...)")
        if list(raw["class_names"]) != self.class_names:
            raise TrainingError(f"resume: {path} was trained on classes {raw['class_names']}, but "
                                f"{self.config.data} has {self.class_names}")
        self.model.load_state_dict(raw["model"])
        self.optimizer.load_state_dict(raw["optimizer"])
        self.scheduler.load_state_dict(raw["scheduler"])
        if "scaler" in raw:
            self.scaler.load_state_dict(raw["scaler"])
        self.epoch = int(raw["epoch"])
        self.best_acc = float(raw.get("best_acc", -1.0))
        self.history = [EpochMetrics(**h) for h in raw.get("history", [])]
        if "rng" in raw:
            set_rng_state(raw["rng"])
        self._log(f"resumed from {path} after epoch {self.epoch}")

    def save_history(self) -> None:
        if not self.output:
            return
        rows = [asdict(h) for h in self.history]
        tmp = self.output / ".history.json.tmp"
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(self.output / "history.json")
        tmp = self.output / ".history.csv.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[f.name for f in fields(EpochMetrics)])
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.output / "history.csv")


def _distributed_setup() -> tuple[int, int]:
    """Join the process group when launched by torchrun; (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def finetune(data: str | os.PathLike, model: str = "efficientnet_lite0", **kwargs: Any) -> Trainer:
    """Fine-tune `model` on the image folder `data` and return the trained Trainer.

    Any TrainConfig field can be passed (epochs, batch_size, lr, strategy, output, …).
    `trainer.model` is the fine-tuned model (with class names for `predict`),
    `trainer.history` the per-epoch metrics, `trainer.evaluate()` the validation result.
    """
    trainer = Trainer(TrainConfig(data=str(data), model=model, **kwargs))
    trainer.fit()
    return trainer


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m effnet_lab.train", description="Fine-tune an EfficientNet "
                                "on a folder of images (root/train/<class>, root/val/<class>, or root/<class>).")
    p.add_argument("--data", required=True, help="image folder")
    p.add_argument("--model", default="efficientnet_lite0", help="a name from effnet_lab.list_models()")
    p.add_argument("--pretrained", action="store_true",
                   help="start from ImageNet weights (off by default, as in timm; finetune() defaults to on)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("-b", "--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the new classifier")
    p.add_argument("--backbone-lr", type=float, default=None, help="default: lr / 10")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-epochs", type=float, default=0.5)
    p.add_argument("--min-lr-ratio", type=float, default=0.01, help="the cosine decays to lr × this")
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    p.add_argument("--drop", type=float, default=None, help="dropout before the classifier")
    p.add_argument("--drop-path", type=float, default=0.1, help="stochastic depth rate")
    p.add_argument("--strategy", choices=STRATEGIES, default="full")
    p.add_argument("--train-stages", type=int, default=2, help="stages trained by --strategy partial")
    p.add_argument("--freeze-bn-stats", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the pretrained BatchNorm statistics (default; turn off for large datasets)")
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--scale", type=float, nargs=2, default=(0.25, 1.0), metavar=("MIN", "MAX"),
                   help="RandomResizedCrop area range")
    p.add_argument("--hflip", type=float, default=0.5, help="horizontal flip probability")
    p.add_argument("--color-jitter", type=float, default=0.2)
    p.add_argument("--aa", default=None, help="auto-augment: randaugment, trivialaugment, augmix, autoaugment")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--amp", action="store_true", default=None, help="mixed precision (default on CUDA)")
    p.add_argument("--no-amp", dest="amp", action="store_false")
    p.add_argument("--channels-last", action="store_true", default=None, help="(default on CUDA)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--compile", "--torchcompile", dest="compile", action="store_true")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("-j", "--workers", type=int, default=None)
    p.add_argument("--output", default=None, help="checkpoints and history go here (default runs/<model>)")
    p.add_argument("--resume", default=None, help="last.pth of an interrupted run")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--no-check-images", dest="check_images", action="store_false",
                   help="skip opening every image before training (large folders)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data, model=args.model, pretrained=args.pretrained, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, backbone_lr=args.backbone_lr, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, min_lr_ratio=args.min_lr_ratio, label_smoothing=args.smoothing,
        drop_rate=args.drop, drop_path_rate=args.drop_path, strategy=args.strategy, train_stages=args.train_stages,
        freeze_bn_stats=args.freeze_bn_stats, img_size=args.img_size, scale=tuple(args.scale), hflip=args.hflip,
        color_jitter=args.color_jitter, auto_augment=args.aa, check_images=args.check_images,
        val_fraction=args.val_fraction, seed=args.seed,
        device=args.device, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        grad_checkpointing=args.grad_checkpointing, workers=args.workers,
        output=args.output or str(Path("runs") / args.model), resume=args.resume,
        deterministic=args.deterministic, progress=args.progress)


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(build_parser().parse_args(argv))
    try:
        trainer = Trainer(config)
        start = time.perf_counter()
        trainer.fit()
    except (TrainingError, ValueError) as e:  # DatasetError and CheckpointError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if trainer.is_main and trainer.history:
        best = max(trainer.history, key=lambda h: h.val_acc)
        print(f"done: {trainer.epoch} epochs in {time.perf_counter() - start:.1f}s on {trainer.device} "
              f"x{trainer.world}; best val acc {best.val_acc:.4f} (epoch {best.epoch}); "
              f"checkpoints in {trainer.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["FolderSummary", "EvalResult", "EpochMetrics", "TrainConfig", "Trainer", "TrainingError",
           "finetune", "main", "pick_device"]
