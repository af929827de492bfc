"""ONNX export through PyTorch's dynamo-based exporter, with the model's preprocessing and class
names stored in the file, so it can be served without the checkpoint or this package."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import onnx
import torch

from .. import __version__
from ..data.config import resolve_data_config
from ..model.blocks import SameConv2d
from ..model.device import eval_mode, model_device
from ..model.predict import label_names
from .files import check_output, save_onnx

log = logging.getLogger(__name__)

# metadata_props keys; load_onnx reads them back.
DATA_CONFIG_KEY = "effnet_lab.data_config"
LABELS_KEY = "effnet_lab.label_names"
ARCHITECTURE_KEY = "effnet_lab.architecture"
VERSION_KEY = "effnet_lab.version"
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def _dim(value: Any, name: str) -> int | str:
    if value == "dynamic":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be 'dynamic' or a positive integer, got {value!r}")
    return value


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    batch: int | str = "dynamic",
    size: str = "auto",
    input_size: tuple[int, int, int] | None = None,
    opset: int | None = None,
    labels: list[str] | None = None,
    example: torch.Tensor | None = None,
    overwrite: bool = False,
) -> Path:
    """Export a classifier to an ONNX file and return its path.

    batch: "dynamic" (any batch size) or a fixed batch size. size: "dynamic" (any height and
    width the network accepts), "static" (the example's size only) or "auto": dynamic, except
    for TF "same"-padded models, whose input-dependent padding makes the dynamic export take
    minutes (4 min for tf_efficientnet_b0 on 2 cores, against 10 s static).
    input_size: (C, H, W) of the example input; default the model's data config. The file
    carries that data config and the class names (`labels`, else as `predict` finds them) as
    ONNX metadata. Exported in eval mode (the model's own modes are restored afterwards);
    an existing file is kept unless overwrite=True; the file is written atomically.
    example: an input batch, for a model whose input is not an RGB image (a 1-channel
    Fashion-MNIST network): the file then stores no data config and takes preprocessed tensors.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"export_onnx needs a torch.nn.Module, got {type(model).__name__}")
    batch = _dim(batch, "batch")
    if size not in ("auto", "dynamic", "static"):
        raise ValueError(f"size must be 'auto', 'dynamic' or 'static', got {size!r}")
    if size == "auto":
        size = "static" if any(isinstance(m, SameConv2d) for m in model.modules()) else "dynamic"
    if example is not None and (input_size is not None or not isinstance(example, torch.Tensor) or example.ndim != 4):
        raise ValueError("example must be an (N, C, H, W) tensor, and input_size is not used with it")
    path = check_output(path, overwrite, "ONNX file")
    if example is not None:
        config = None  # tensors in, no image preprocessing to record
    else:
        config = resolve_data_config(model) if input_size is None else resolve_data_config(model, input_size=input_size)
    num_classes = getattr(model, "num_classes", None)
    if num_classes == 0:
        raise ValueError("export_onnx exports classifiers; this model has none (num_classes=0)")

    shape = config["input_size"] if config else tuple(example.shape[1:])
    example = torch.zeros(2 if batch == "dynamic" else batch, *shape, device=model_device(model))
    dims: dict[int, Any] = {}
    if batch == "dynamic":
        dims[0] = torch.export.Dim("batch", min=1, max=4096)
    if size == "dynamic":
        dims[2] = torch.export.Dim("height", min=16, max=4096)
        dims[3] = torch.export.Dim("width", min=16, max=4096)
    if model.training:
        log.warning("export_onnx: the model is in training mode; exporting it in eval mode "
                    "(BatchNorm running statistics, no dropout)")
    with eval_mode(model), torch.no_grad():
        logits = model(example)
        if not (isinstance(logits, torch.Tensor) and logits.ndim == 2):
            raise ValueError("export_onnx needs a classifier returning (batch, num_classes) logits")
        names = label_names(model, logits.shape[1], labels)
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=(dims,) if dims else None,
                                    verbose=False)
    proto = program.model_proto
    meta = {DATA_CONFIG_KEY: json.dumps(config), LABELS_KEY: json.dumps(names),
            ARCHITECTURE_KEY: str((getattr(model, "pretrained_cfg", None) or {}).get("architecture",
                                  type(model).__name__)),
            VERSION_KEY: __version__}
    proto.producer_name = "effnet_lab (torch.onnx dynamo exporter)"
    save_onnx(proto, path, meta)
    log.info("exported %s to %s (%.1f MB)", meta[ARCHITECTURE_KEY], path, path.stat().st_size / 1e6)
    return path


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file (without loading its weights)."""
    proto = onnx.load(os.fspath(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
