"""Every setting of a training run, in one dataclass; the command line is generated from it.

Each field's default is written once, here. `build_parser` turns the fields into flags (timm's
flag names where timm has one, given in the field's metadata), so a new field gets its flag
without being restated anywhere.
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .progressive import DEFAULT_STAGES, DEFAULT_START_STRENGTH, parse_sizes, progressive_schedule

STRATEGIES = ("linear", "partial", "full")
DEFAULT_DROP_PATH = 0.1  # stochastic depth when fine-tuning a registry model


def _opt(default: Any, help: str = "", flags: tuple[str, ...] = (), **cli: Any) -> Any:
    """A field with its command-line flag names and help (and, rarely, a different CLI default)."""
    return field(default=default, metadata=dict(help=help, flags=flags, **cli))


@dataclass
class TrainConfig:
    """Every setting of a fine-tuning run (saved inside its checkpoints)."""

    data: str | None = _opt(None, "image folder: root/train/<class> and root/val/<class>, or root/<class>",
                            required=True)
    model: str = _opt("efficientnet_lite0", "a name from effnet_lab.list_models()")
    # None: on for a registry name (finetune() starts from ImageNet weights); the command line
    # keeps timm's default, off unless --pretrained.
    pretrained: bool | None = _opt(None, "start from ImageNet weights (off by default, as in timm; "
                                   "finetune() defaults to on)", cli_default=False)
    epochs: int = _opt(5)
    batch_size: int = _opt(32, flags=("-b", "--batch-size"))
    lr: float = _opt(1e-3, "learning rate of the new classifier")
    backbone_lr: float | None = _opt(None, "learning rate of the pretrained layers (default: lr / 10)")
    weight_decay: float = _opt(0.01)
    warmup_epochs: float = _opt(0.5)
    min_lr_ratio: float = _opt(0.01, "the cosine decays to lr × this")
    label_smoothing: float = _opt(0.1, "label smoothing", flags=("--smoothing",))
    drop_rate: float | None = _opt(None, "dropout before the classifier (default: the model's)", flags=("--drop",))
    drop_path_rate: float | None = _opt(None, f"stochastic depth rate (default: {DEFAULT_DROP_PATH} for a registry "
                                        "model, a config's own otherwise)", flags=("--drop-path",))
    strategy: str = _opt("full", "linear (head only) | partial (last --train-stages stages + head) | full",
                         choices=STRATEGIES)
    train_stages: int = _opt(2, "stages trained by --strategy partial")
    # Keep every BatchNorm's pretrained statistics. On small datasets updating them from a few
    # batches costs a lot of accuracy (demo data: 10–20 points after one epoch), so on by default.
    freeze_bn_stats: bool = _opt(True, "keep the pretrained BatchNorm statistics (turn off for large datasets)")
    img_size: int | None = _opt(None, "input size (default: the model's own)")
    scale: tuple[float, float] = _opt((0.25, 1.0), "RandomResizedCrop area range", metavar=("MIN", "MAX"))
    hflip: float = _opt(0.5, "horizontal flip probability")
    color_jitter: float = _opt(0.2)
    auto_augment: str | None = _opt(None, "randaugment | trivialaugment | augmix | autoaugment", flags=("--aa",))
    progressive: str | None = _opt(None, "progressive learning (EfficientNetV2): image size growing from START to "
                                   "END over the run, regularisation with it; 'auto': from half the input size",
                                   metavar="START:END")
    progressive_stages: int = _opt(DEFAULT_STAGES, "stages of progressive learning (the paper's M)")
    progressive_reg: float = _opt(DEFAULT_START_STRENGTH, "regularisation of the first progressive stage, as a share "
                                  "of the last's (dropout; RandAugment magnitude, else colour jitter)")
    val_fraction: float = _opt(0.2, "share of each class held out, for a folder without train/ and val/")
    seed: int = _opt(0)
    device: str | None = _opt(None, "cuda, mps or cpu (default: the best available)")
    amp: bool | None = _opt(None, "mixed precision (default: on for CUDA)")
    channels_last: bool | None = _opt(None, "channels_last memory format (default: on for CUDA)")
    compile: bool = _opt(False, "torch.compile the model", flags=("--compile", "--torchcompile"))
    grad_checkpointing: bool = _opt(False, "recompute activations in backward to save memory")
    workers: int | None = _opt(None, "DataLoader workers (default: 0 on CPU, up to 8 on GPU)",
                               flags=("-j", "--workers"))
    output: str | None = _opt(None, "checkpoints and history go here (default: runs/<model>; in Python: not saved)")
    resume: str | None = _opt(None, "last.pth of an interrupted run")
    overwrite: bool = _opt(False, "replace the run already in --output (refused otherwise: nothing is lost unasked)")
    deterministic: bool = _opt(False, "deterministic algorithms (bit-identical resume on CPU)")
    progress: bool = _opt(True, "progress bars")
    check_images: bool = _opt(True, "open every image before training (--no-check-images: skip, for large folders)")

    def __post_init__(self) -> None:
        """Every value is used as given or refused here, naming the setting and its flag."""
        self.data = None if self.data is None else str(self.data)
        self.scale = tuple(self.scale) if isinstance(self.scale, list | tuple) else self.scale
        _one_of(self, "strategy", STRATEGIES)
        _one_of(self, "auto_augment", (None, "randaugment", "trivialaugment", "augmix", "autoaugment"))
        for name in ("epochs", "batch_size", "img_size", "progressive_stages"):
            _check(self, name, lambda v: v is None or (_integer(v) and v >= 1), "an integer of at least 1")
        for name in ("train_stages", "workers", "seed"):
            _check(self, name, lambda v: v is None or (_integer(v) and v >= 0), "an integer of at least 0")
        for name in ("lr", "backbone_lr"):
            _check(self, name, lambda v: v is None or (math.isfinite(v) and v > 0), "a positive number")
        for name in ("weight_decay", "warmup_epochs", "color_jitter"):
            _check(self, name, lambda v: math.isfinite(v) and v >= 0, "a number of at least 0")
        for name in ("min_lr_ratio", "hflip"):
            _check(self, name, lambda v: 0 <= v <= 1, "in [0, 1]")
        for name in ("label_smoothing", "drop_rate", "drop_path_rate"):
            _check(self, name, lambda v: v is None or 0 <= v < 1, "in [0, 1)")
        _check(self, "val_fraction", lambda v: 0 < v < 1, "strictly between 0 and 1")
        _check(self, "scale", lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1, "(min, max) with 0 < min <= max <= 1")
        if self.progressive is not None:  # the sizes' syntax, the stages and the strength, before any work
            start, end = parse_sizes(self.progressive, end_default=self.img_size or 10**6)
            if self.img_size is not None and end != self.img_size:
                raise ValueError(f"progressive (--progressive) ends at {end} px but img_size (--img-size) is "
                                 f"{self.img_size}: the last stage trains at the size the model is evaluated at")
            progressive_schedule(self.epochs, self.progressive_stages, start, end, self.progressive_reg)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (saved inside checkpoints, which are read with weights_only=True)."""
        return asdict(self)


def flag(name: str) -> str:
    """The command-line flag of a TrainConfig field ("label_smoothing" -> "--smoothing")."""
    f = TrainConfig.__dataclass_fields__[name]
    return (f.metadata.get("flags") or (f"--{name.replace('_', '-')}",))[-1]


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(cfg: TrainConfig, name: str, ok: Callable[[Any], bool], wanted: str) -> None:
    value = getattr(cfg, name)
    try:
        good = ok(value)
    except TypeError:
        good = False
    if not good:
        raise ValueError(f"{name} ({flag(name)}) must be {wanted}, got {value!r}")


def _one_of(cfg: TrainConfig, name: str, choices: tuple) -> None:
    if getattr(cfg, name) not in choices:
        raise ValueError(f"{name} ({flag(name)}) must be one of {[c for c in choices if c is not None]}, "
                         f"got {getattr(cfg, name)!r}")


# ----------------------------------------------------------------------------- command line
def _value_type(hint: Any) -> tuple[type, bool]:
    """(the value's type, whether None is allowed) of a field annotation like `float | None`."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True
    return hint, False


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block, no traceback)."""

    def error(self, message: str):  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """`python -m effnet_lab.train`'s flags, one per TrainConfig field."""
    p = OneLineParser(prog="python -m effnet_lab.train", description="Fine-tune an EfficientNet "
                                "on a folder of images (root/train/<class>, root/val/<class>, or root/<class>).")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        flags = meta.pop("flags") or (f"--{f.name.replace('_', '-')}",)
        kw: dict[str, Any] = dict(dest=f.name, help=meta.pop("help") or None,
                                  default=meta.pop("cli_default", f.default if f.default is not MISSING else None))
        kind, _ = _value_type(hints[f.name])
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction  # --x / --no-x
        elif typing.get_origin(kind) is tuple:
            kw.update(type=typing.get_args(kind)[0], nargs=len(typing.get_args(kind)))
        else:
            kw["type"] = kind
        kw.update(meta)  # required, choices, metavar
        p.add_argument(*flags, **kw)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of a parsed command line. The CLI saves to runs/<model> unless --output says."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if values["output"] is None:  # continue a run where it is, else a folder named after the model
        values["output"] = str(Path(values["resume"]).parent if values["resume"] else Path("runs") / values["model"])
    return TrainConfig(**values)
