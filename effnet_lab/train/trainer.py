"""Fine-tune an EfficientNet: one call, one command, or step by step.

    from effnet_lab.train import finetune
    finetune("data/demo", model="efficientnet_lite0", epochs=3)

    python -m effnet_lab.train --data data/demo --model efficientnet_lite0 --pretrained \\
        --epochs 3 --batch-size 32 --lr 1e-3 --output runs/demo
    torchrun --nproc_per_node 2 -m effnet_lab.train ...      (DistributedDataParallel)

`Trainer` puts a run together (model, data, optimizer, schedule, precision, processes) and
drives the loop functions of `loop.py`: `fit()` runs everything, or call `train_one_epoch()`,
`evaluate()` and `save_checkpoint()` yourself. The model is a registry name, an
`EfficientNetConfig` or a module you built; the data is an image folder, a (train, val) pair of
datasets, or one dataset to split. Every epoch writes `last.pth` (and `best.pth` when
validation accuracy improves) atomically, plus `history.csv` / `history.json`.

Reproducibility: each epoch reseeds every random number generator from (seed, epoch), so
an interrupted run resumed from its last checkpoint ends with the same weights as a run
that was never interrupted (on CPU with `deterministic=True`, with or without loader workers).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split
from tqdm.auto import tqdm

from ..data.config import resolve_data_config
from ..data.folders import FolderSummary, ImageFolderDataset, scan_image_folder
from ..data.transforms import create_transform
from ..model.device import eval_mode, usable_device
from ..model.network import EfficientNet, optimizer_param_groups
from ..model.registry import create_model
from ..paper.architecture import EfficientNetConfig, config_to_dict
from ..weights.checkpoint import CheckpointError, check_finite, read_checkpoint, save_atomic, write_text_atomic
from ..weights.layouts import mismatch_message
from . import loop
from .config import DEFAULT_DROP_PATH, TrainConfig
from .distributed import EpochShuffle, Shard, all_reduce_sum, distributed_setup
from .loop import EvalResult, NonFiniteLoss, OutOfMemory, TrainingError
from .progressive import ProgressiveStage, parse_sizes, progressive_schedule, stage_of

log = logging.getLogger(__name__)

RUN_FILES = ("last.pth", "best.pth", "history.json", "history.csv")  # what a run writes in its --output

ModelSpec = str | EfficientNetConfig | nn.Module
DataSpec = str | os.PathLike | Dataset | tuple[Dataset, Dataset]


class RunExistsError(TrainingError):
    """The output folder already holds another run; nothing was overwritten."""


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
    train_size: int | None = None  # the training image size (progressive learning changes it)


class Trainer:
    """One training run. `Trainer(config)`, or `Trainer(model=..., data=..., epochs=3, ...)` with
    any TrainConfig field as a keyword; `model` and `data` may be objects (see the module doc)."""

    def __init__(self, config: TrainConfig | None = None, *, model: ModelSpec | None = None,
                 data: DataSpec | None = None, class_names: Sequence[str] | None = None, **settings: Any):
        if isinstance(model, str):
            settings["model"] = model
        if isinstance(data, str | os.PathLike):
            settings["data"] = str(data)
        if config is None:
            config = TrainConfig(**settings)
        elif settings:
            config = replace(config, **settings)
        datasets = None if data is None or isinstance(data, str | os.PathLike) else data
        if datasets is None and config.data is None:
            raise ValueError("no data: pass an image folder (data='path') or datasets (data=(train_set, val_set))")
        self.config = cfg = config
        self._check_paths()  # before any work: nothing is lost, no epoch is wasted on a bad path
        self._setup_runtime()
        loop.seed_everything(cfg.seed)
        scanned = self._scan_folder() if datasets is None else None

        self.model = self._build_model(model if model is not None and not isinstance(model, str) else cfg.model)
        data_cfg = resolve_data_config(self.model, **({"img_size": cfg.img_size} if cfg.img_size else {}))
        self.progressive: list[ProgressiveStage] | None = None
        if cfg.progressive:  # the last stage trains at the size the model is evaluated at
            start, end = parse_sizes(cfg.progressive, end_default=data_cfg["input_size"][-1])
            data_cfg = resolve_data_config(self.model, img_size=end)
            self.progressive = progressive_schedule(cfg.epochs, cfg.progressive_stages, start, end,
                                                    cfg.progressive_reg)
        self.data_config = data_cfg
        self.train_set, self.val_set, self.class_names, self.summary = self._build_data(scanned, datasets,
                                                                                      class_names)
        self._log(str(self.summary) if self.summary else
                  f"{len(self.class_names)} classes, {len(self.train_set)} train / {len(self.val_set)} val samples")
        self._fit_model_to_data()
        self._build_loaders()
        self._build_optimization()

        self.epoch = 0  # epochs completed
        self.best_acc = -1.0
        self.history: list[EpochMetrics] = []
        self.output = Path(cfg.output) if cfg.output else None
        if cfg.resume:
            self.load_checkpoint(cfg.resume)

    # -- setup ------------------------------------------------------------------------------
    def _check_paths(self) -> None:
        """Refuse, before anything runs, an --output that is a file or already holds another run
        (unless resuming it, or --overwrite), and a --resume that does not exist."""
        cfg = self.config
        if cfg.resume and not Path(cfg.resume).is_file():
            raise TrainingError(f"resume: checkpoint {cfg.resume!r} does not exist"
                                + (" (it is a folder: pass its last.pth)" if Path(cfg.resume).is_dir() else ""))
        if not cfg.output:
            return
        out = Path(cfg.output)
        if out.exists() and not out.is_dir():
            raise TrainingError(f"--output {cfg.output!r} is an existing file, not a folder: choose a folder")
        held = sorted(p.name for p in (out / n for n in RUN_FILES) if p.exists())
        resuming_here = cfg.resume and Path(cfg.resume).resolve() == (out / "last.pth").resolve()
        if held and not resuming_here and not cfg.overwrite:
            if cfg.resume and Path(cfg.resume).resolve().parent == out.resolve():
                raise RunExistsError(f"--resume {cfg.resume!r} is not the run's last.pth: continuing from it would "
                                     f"overwrite the newer {out / 'last.pth'}; copy it to another --output, or pass "
                                     f"--overwrite")
            raise RunExistsError(
                f"--output {cfg.output!r} already holds a run ({', '.join(held)}): continue it with "
                f"--resume {out / 'last.pth'}, choose another --output, or pass --overwrite to replace it")

    def _setup_runtime(self) -> None:
        """Processes, device, precision, memory format, determinism."""
        cfg = self.config
        self.rank, self.world = distributed_setup()
        self.is_main = self.rank == 0
        self.device = usable_device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        self.amp = cfg.amp if cfg.amp is not None else self.device.type == "cuda"
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else self.device.type == "cuda"
        self.autocast_dtype = (torch.bfloat16 if self.device.type != "cuda" or torch.cuda.is_bf16_supported()
                               else torch.float16)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=self.device.type != "cpu")

    def _build_model(self, spec: ModelSpec) -> nn.Module:
        """A registry name (pretrained by default), an EfficientNetConfig (random init), or a module."""
        cfg = self.config
        if isinstance(spec, str):
            pretrained = True if cfg.pretrained is None else cfg.pretrained
            drop_path = DEFAULT_DROP_PATH if cfg.drop_path_rate is None else cfg.drop_path_rate
            return create_model(spec, pretrained=pretrained, num_classes=1000, drop_rate=cfg.drop_rate,
                                drop_path_rate=drop_path)
        if cfg.pretrained:
            raise ValueError("pretrained=True needs a registry name (model='efficientnet_lite0'); a config or a "
                             "module you pass is used with the weights it has")
        if isinstance(spec, EfficientNetConfig):  # its own input size, dropout and drop path unless overridden
            arch = replace(spec, **({"drop_path_rate": cfg.drop_path_rate} if cfg.drop_path_rate is not None else {}),
                           **({"dropout": cfg.drop_rate} if cfg.drop_rate is not None else {}))
            self.config = replace(cfg, model="custom EfficientNetConfig")
            size = (3, arch.resolution, arch.resolution)
            return EfficientNet(arch, num_classes=1000, pretrained_cfg={"input_size": size, "architecture": "custom"})
        if isinstance(spec, nn.Module):
            self.config = replace(cfg, model=f"custom {type(spec).__name__}")
            return spec
        raise TypeError(f"model must be a registry name, an EfficientNetConfig or an nn.Module, "
                        f"got {type(spec).__name__}")

    def _scan_folder(self) -> tuple[list, list, FolderSummary]:
        """Classes, images and the train/val split of the image folder, every image checked."""
        cfg = self.config
        return scan_image_folder(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed,
                                 check_images=cfg.check_images)

    def _build_data(self, scanned: tuple[list, list, FolderSummary] | None, datasets: Dataset | tuple | None,
                    class_names: Sequence[str] | None) -> tuple[Dataset, Dataset, list[str], FolderSummary | None]:
        cfg = self.config
        if scanned is not None:
            train, val, summary = scanned  # a scanned folder: add the model's preprocessing
            return (ImageFolderDataset(train, summary.classes, self._train_transform()),
                    ImageFolderDataset(val, summary.classes, create_transform(**self.data_config)),
                    list(summary.classes), summary)
        if isinstance(datasets, tuple | list):
            if len(datasets) != 2:
                raise ValueError(f"data must be one dataset or a (train, val) pair, got {len(datasets)} items")
            train_set, val_set = datasets
        else:  # one dataset: a seeded random split
            n_val = max(1, round(len(datasets) * cfg.val_fraction))
            if len(datasets) - n_val < 1:
                raise ValueError(f"a dataset of {len(datasets)} samples leaves nothing to train on after holding "
                                 f"out val_fraction={cfg.val_fraction}")
            train_set, val_set = random_split(datasets, [len(datasets) - n_val, n_val],
                                              generator=torch.Generator().manual_seed(cfg.seed))
        names = class_names if class_names is not None else _dataset_classes(train_set)
        if names is None:
            raise ValueError("the datasets do not say their classes (no .classes attribute): pass class_names=[...]")
        if len(val_set) == 0:
            raise ValueError("the validation dataset is empty: there would be nothing to evaluate on")
        return train_set, val_set, [str(c) for c in names], None

    def _train_transform(self, size: int | None = None, strength: float = 1.0):
        """The training augmentation at `size` (default: the data config's), its strength scaled
        by `strength` (progressive learning): RandAugment's magnitude, else the colour jitter."""
        cfg = self.config
        data = {**self.data_config, **({"input_size": (3, size, size)} if size else {})}
        return create_transform(**data, is_training=True, scale=cfg.scale, hflip=cfg.hflip,
                                color_jitter=cfg.color_jitter * strength, auto_augment=cfg.auto_augment,
                                magnitude=round(9 * strength))

    def _fit_model_to_data(self) -> None:
        """A head for our classes; record what the fine-tune adds; freeze what the strategy keeps."""
        cfg, m = self.config, self.model
        if isinstance(m, EfficientNet):
            m.reset_classifier(len(self.class_names))
            m.fine_tune = {**self.data_config, "label_names": self.class_names}
        elif hasattr(m, "reset_classifier"):
            m.reset_classifier(len(self.class_names))
        if cfg.strategy != "full" and not isinstance(m, EfficientNet):
            raise ValueError(f"strategy={cfg.strategy!r} freezes stages of an EfficientNet; train "
                             f"a {type(m).__name__} with strategy='full'")
        if not isinstance(m, EfficientNet):
            self._check_outputs(m)
        if cfg.grad_checkpointing:
            if not hasattr(m, "set_grad_checkpointing"):
                raise ValueError(f"grad_checkpointing (--grad-checkpointing): a {type(m).__name__} has no "
                                 "set_grad_checkpointing()")
            m.set_grad_checkpointing(True)
        self._apply_strategy()
        self._dropouts = [(d, d.p) for d in m.modules() if isinstance(d, nn.Dropout)]  # progressive scales them
        m.to(self.device)
        if self.channels_last:
            m.to(memory_format=torch.channels_last)

    def _check_outputs(self, model: nn.Module) -> None:
        """A module of your own must give one logit per class: one sample, forward, look."""
        x, _ = self.train_set[0]
        with eval_mode(model), torch.no_grad():
            out = model(torch.as_tensor(x)[None])
        if not (isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] == len(self.class_names)):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model gives {got} for one sample, but the data has {len(self.class_names)} "
                             f"classes: it must return (batch, {len(self.class_names)}) logits")

    def _build_loaders(self) -> None:
        cfg = self.config
        workers = cfg.workers if cfg.workers is not None else (0 if self.device.type == "cpu" else
                                                                min(8, os.cpu_count() or 1))
        self.train_sampler = EpochShuffle(len(self.train_set), cfg.seed, self.rank, self.world)
        pin = self.device.type == "cuda"
        # Workers are started afresh every epoch (not persistent): each then seeds its augmentation
        # from the generator reseeded for that epoch, so a resumed run draws the same crops.
        self.train_loader = DataLoader(self.train_set, cfg.batch_size, sampler=self.train_sampler,
                                       num_workers=workers, pin_memory=pin, drop_last=False)
        self.val_loader = DataLoader(self.val_set, cfg.batch_size,
                                     sampler=Shard(len(self.val_set), self.rank, self.world),
                                     num_workers=workers, pin_memory=pin)

    def _build_optimization(self) -> None:
        """AdamW (no weight decay on biases and BatchNorm, the head at lr and the backbone at
        backbone_lr), warm-up + cosine per step, a grad scaler for fp16, DDP, compile."""
        cfg = self.config
        backbone_lr = cfg.backbone_lr if cfg.backbone_lr is not None else cfg.lr / 10
        if isinstance(self.model, EfficientNet):  # the model owns its groups
            groups = self.model.param_groups(cfg.lr, cfg.weight_decay, backbone_lr)
        else:  # any other classifier: the same rule, its head named "classifier"
            groups = optimizer_param_groups(self.model, cfg.lr, cfg.weight_decay, backbone_lr)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        steps = cfg.epochs * len(self.train_loader)
        warmup = int(cfg.warmup_epochs * len(self.train_loader))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, loop.warmup_cosine(steps, warmup, cfg.min_lr_ratio))
        # a grad scaler only for fp16 (bf16 has float32's range)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp and self.autocast_dtype == torch.float16)
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)

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

    def set_train_mode(self) -> None:
        """Train mode for what trains; frozen parts keep eval mode so their BatchNorm
        statistics stay those of the pretrained network."""
        self.model.train()
        m = self.model
        if isinstance(m, EfficientNet):
            for part in [m.stem, *(block for stage in m.stages for block in stage), m.head]:
                if not any(p.requires_grad for p in part.parameters()):
                    part.eval()  # wholly frozen: no drop path, no BatchNorm updates
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d) and (self.config.freeze_bn_stats or not mod.weight.requires_grad):
                mod.eval()

    def _log(self, message: str) -> None:
        if self.is_main:
            log.info(message)

    # -- one epoch ---------------------------------------------------------------------------
    def autocast(self):
        """The autocast context of this run (bf16 or fp16 on CUDA with amp; a no-op otherwise)."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.amp)

    def _reduce(self) -> loop.Reduce | None:
        return all_reduce_sum if self.world > 1 else None

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return loop.to_device(images, labels, self.device, self.channels_last)

    def progressive_stage(self, epoch: int | None = None) -> ProgressiveStage | None:
        """The progressive-learning stage of 0-based `epoch` (default: the next one), or None."""
        return stage_of(self.progressive, self.epoch if epoch is None else epoch) if self.progressive else None

    def _enter_progressive_stage(self) -> int | None:
        """Set this epoch's image size and regularisation; the size the batches must be resized to
        (datasets we did not build keep their own transform), or None."""
        stage = self.progressive_stage()
        if stage is None:
            return None
        for dropout, p in self._dropouts:
            dropout.p = p * stage.strength
        if self.epoch == stage.first_epoch:
            self._log(f"progressive learning, stage {stage.index + 1}/{len(self.progressive)}: epochs "
                      f"{stage.first_epoch + 1}-{stage.last_epoch + 1} at {stage.size} px, regularisation "
                      f"×{stage.strength:.2f}")
        if self.summary is not None:  # our folder dataset: augment at the stage's size directly
            self.train_set.transform = self._train_transform(stage.size, stage.strength)
            return None
        return stage.size

    def train_one_epoch(self) -> dict[str, float]:
        cfg, epoch = self.config, self.epoch
        loop.seed_everything(cfg.seed * 1_000 + epoch)  # augmentation, dropout, drop path: f(seed, epoch)
        self.train_sampler.set_epoch(epoch)
        resize = self._enter_progressive_stage()
        self.set_train_mode()
        bar = functools.partial(tqdm, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
                                disable=not (cfg.progress and self.is_main))
        with self._explained_errors():
            return loop.train_one_epoch(
                self.net, self.train_loader, self.optimizer, scheduler=self.scheduler, device=self.device,
                channels_last=self.channels_last, label_smoothing=cfg.label_smoothing, autocast=self.autocast,
                scaler=self.scaler, reduce=self._reduce(), progress=bar, where=f"epoch {epoch + 1}, ",
                input_size=resize)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a batch already on the device (`loop.train_step` with this
        run's optimizer, precision and smoothing). Returns (logits, loss); the schedule is not stepped."""
        with self._explained_errors():
            return loop.train_step(self.net, images, labels, self.optimizer,
                                   label_smoothing=self.config.label_smoothing, autocast=self.autocast,
                                   scaler=self.scaler)

    @contextlib.contextmanager
    def _explained_errors(self) -> Iterator[None]:
        """Turn the loop's errors into messages that say what to try, in this run's terms."""
        cfg = self.config
        try:
            yield
        except NonFiniteLoss as e:
            raise TrainingError(
                f"{e}: training stopped. The last good checkpoint is {self._last_path() or '(none saved)'}. "
                f"Try a lower --lr (now {cfg.lr:g}) or --no-amp.") from None
        except OutOfMemory as e:
            raise TrainingError(
                f"out of {e.device} memory at batch size {cfg.batch_size}: try "
                f"--batch-size {max(1, cfg.batch_size // 2)} (or --amp, --grad-checkpointing)") from None

    def evaluate(self, loader: DataLoader | None = None) -> EvalResult:
        return loop.evaluate(self.model, self.val_loader if loader is None else loader, len(self.class_names),
                             device=self.device, channels_last=self.channels_last, autocast=self.autocast,
                             reduce=self._reduce(), class_names=self.class_names)

    # -- the whole run ------------------------------------------------------------------------
    def fit(self, until_epoch: int | None = None) -> list[EpochMetrics]:
        """Train from the current epoch to `config.epochs` (or stop after `until_epoch`)."""
        cfg = self.config
        last = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
        epochs = tqdm(range(self.epoch, last), desc="fine-tuning", unit="epoch",
                      disable=not (cfg.progress and self.is_main), initial=self.epoch, total=cfg.epochs)
        for _ in epochs:
            lr = max(g["lr"] for g in self.optimizer.param_groups)  # the head's
            stage = self.progressive_stage()
            train = self.train_one_epoch()
            result = self.evaluate()
            self.epoch += 1
            metrics = EpochMetrics(self.epoch, train["loss"], train["acc"], result.loss, result.accuracy, lr,
                                   train["images_per_s"], train["time_s"],
                                   stage.size if stage else self.data_config["input_size"][-1])
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
        model_config = getattr(self.model, "config", None)
        return {
            "model": self.model.state_dict(),
            "model_name": self.config.model,
            **({"model_config": config_to_dict(model_config)} if isinstance(model_config, EfficientNetConfig) else {}),
            "data_config": dict(self.data_config),
            "class_names": self.class_names,
            "epoch": self.epoch,
            "best_acc": self.best_acc,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": loop.rng_state(),
            "train_config": self.config.to_dict(),
            "history": [asdict(h) for h in self.history],
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        return save_atomic(self.checkpoint(), path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue a run: weights, optimizer, schedule, scaler, epoch, RNG and history."""
        if not Path(path).is_file():
            raise TrainingError(f"resume: checkpoint {str(path)!r} does not exist")
        raw = read_checkpoint(path)
        if not isinstance(raw, dict):
            raise TrainingError(f"resume: {path} is not a training checkpoint (it holds a {type(raw).__name__})")
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "class_names") if k not in raw]
        if missing:
            raise TrainingError(f"resume: {path} is not a training checkpoint (no {', '.join(missing)}); "
                                f"to start from its weights use create_model(..., checkpoint_path=...)")
        if list(raw["class_names"]) != self.class_names:
            raise TrainingError(f"resume: {path} was trained on classes {raw['class_names']}, but "
                                f"{self.config.data or 'the datasets'} have {self.class_names}")
        check_finite(raw["model"], str(path))
        self._check_fits(raw, path)  # before anything changes: a refused resume leaves the run as it was
        self.model.load_state_dict(raw["model"])
        self.optimizer.load_state_dict(raw["optimizer"])
        self.scheduler.load_state_dict(raw["scheduler"])
        if raw.get("scaler") and self.scaler.is_enabled():  # empty when the run had no fp16 grad scaler
            self.scaler.load_state_dict(raw["scaler"])
        self.epoch = int(raw["epoch"])
        self.best_acc = float(raw.get("best_acc", -1.0))
        self.history = [EpochMetrics(**h) for h in raw.get("history", [])]
        if "rng" in raw:
            loop.set_rng_state(raw["rng"])
        self._log(f"resumed from {path} after epoch {self.epoch}")

    def _check_fits(self, raw: dict[str, Any], path: str | os.PathLike) -> None:
        own = self.model.state_dict()
        theirs = raw["model"]
        missing = [k for k in own if k not in theirs]
        unexpected = [k for k in theirs if k not in own]
        shapes = [(k, theirs[k].shape, own[k].shape) for k in own if k in theirs and theirs[k].shape != own[k].shape]
        if missing or unexpected or shapes:
            raise CheckpointError(mismatch_message(f"resume: {path} holds another architecture's weights than "
                                                   f"--model {self.config.model}", missing, unexpected, shapes))
        stored = [len(g["params"]) for g in raw["optimizer"].get("param_groups", [])]
        ours = [len(g["params"]) for g in self.optimizer.param_groups]
        if stored != ours:
            was = raw.get("train_config") or {}
            raise CheckpointError(
                f"resume: {path} was trained with other parameters trainable (--strategy "
                f"{was.get('strategy', '?')}, --train-stages {was.get('train_stages', '?')}; this run: --strategy "
                f"{self.config.strategy}, --train-stages {self.config.train_stages}): resume with the run's settings")

    def save_history(self) -> None:
        if not self.output:
            return
        rows = [asdict(h) for h in self.history]
        write_text_atomic(self.output / "history.json", json.dumps(rows, indent=1))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(EpochMetrics)])
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.output / "history.csv", text.getvalue())


@contextlib.contextmanager
def show_log(stream: IO[str] | None = None) -> Iterator[None]:
    """Inside the block, the training log (the dataset summary, one line per epoch, resumes) is
    printed to `stream` (default: standard output). Logging shows nothing unless configured;
    this is the switch for a notebook, and what the command line uses."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(__name__.rsplit(".", 1)[0])  # effnet_lab.train
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _dataset_classes(dataset: Dataset) -> Sequence[str] | None:
    """`dataset.classes` (torchvision's convention), looking through Subset wrappers."""
    while dataset is not None:
        if getattr(dataset, "classes", None) is not None:
            return list(dataset.classes)
        dataset = getattr(dataset, "dataset", None)
    return None


def finetune(data: DataSpec, model: ModelSpec = "efficientnet_lite0", **settings: Any) -> Trainer:
    """Fine-tune `model` on `data` and return the trained Trainer.

    `data`: an image folder, a (train, val) pair of datasets, or one dataset (split by
    val_fraction). `model`: a registry name (ImageNet weights by default), an EfficientNetConfig
    or a module. Any TrainConfig field can be passed (epochs, batch_size, lr, strategy, output, …).
    `trainer.model` is the fine-tuned model (with class names for `predict`),
    `trainer.history` the per-epoch metrics, `trainer.evaluate()` the validation result.
    """
    trainer = Trainer(model=model, data=data, **settings)
    trainer.fit()
    return trainer
