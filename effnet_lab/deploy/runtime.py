"""An exported model run by ONNX Runtime, shaped like a torch classifier so that
`effnet_lab.predict` (and anything else that calls a model on a tensor) accepts it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from ..data.config import resolve_data_config
from .export import ARCHITECTURE_KEY, DATA_CONFIG_KEY, LABELS_KEY


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session behind a torch-module face: call it on an (N, C, H, W) float
    tensor, get (N, num_classes) logits. It has no parameters; `pretrained_cfg` holds the data
    config and class names, as on a model from `create_model` (no data config for a file
    exported from a tensor example: `takes_images` is False)."""

    def __init__(self, path: Path, session: ort.InferenceSession, data_config: Mapping[str, Any],
                 labels: Sequence[str] | None, architecture: str) -> None:
        super().__init__()
        self.path, self.session = path, session
        (inp,) = session.get_inputs()
        self.input_name, self.input_shape = inp.name, list(inp.shape)  # ints, or names of dynamic axes
        out = session.get_outputs()[0].shape[-1]
        self.num_classes = out if isinstance(out, int) else (len(labels) if labels else None)
        self.pretrained_cfg: dict[str, Any] = {**data_config, "architecture": architecture, "source": str(path)}
        if labels is not None:
            self.pretrained_cfg["label_names"] = list(labels)
        self.takes_images = bool(data_config)

    def _check(self, x: torch.Tensor) -> None:
        want = ["N" if not isinstance(d, int) else d for d in self.input_shape]
        fixed = [(i, d) for i, d in enumerate(self.input_shape) if isinstance(d, int)]
        if x.ndim != len(self.input_shape) or any(x.shape[i] != d for i, d in fixed):
            shape = ", ".join(str(d) if isinstance(d, int) else d for d in want)
            raise ValueError(f"{self.path.name} expects an input of shape ({shape}), "
                             f"got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits)

    def extra_repr(self) -> str:
        return f"{self.path}, input {self.input_shape}, {self.session.get_providers()[0]}"


def load_onnx(path: str | os.PathLike, *, data_config: Mapping[str, Any] | None = None,
              labels: Sequence[str] | None = None, threads: int | None = None,
              providers: Sequence[str] | None = None, spinning: bool = True) -> OnnxModel:
    """Open an ONNX classifier on ONNX Runtime (CPU unless `providers` says otherwise).

    The preprocessing and class names come from the metadata `export_onnx` wrote. A file from
    elsewhere has none: then pass `data_config` (the keys of `resolve_data_config`: input_size,
    mean, std, interpolation, crop_pct, crop_mode; missing keys take timm's defaults) and,
    optionally, `labels`. threads: ONNX Runtime's intra-op threads (default torch's count).
    spinning: ONNX Runtime's threads keep spinning for a while after each run, for the next one's
    latency; with spinning=False they sleep, so PyTorch code run right after (a benchmark that
    alternates the two, a notebook) gets the cores back.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(os.fspath(path), options, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:  # ONNX Runtime raises its own Fail/InvalidProtobuf types
        raise ValueError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if data_config is None:
        if DATA_CONFIG_KEY not in meta:
            raise ValueError(f"{path} has no effnet_lab metadata (it was not written by export_onnx), so its "
                             "preprocessing is unknown; pass data_config={'input_size': (3, 224, 224), 'mean': ..., "
                             "'std': ...} (and labels=[...]) to load it anyway")
        data_config = json.loads(meta[DATA_CONFIG_KEY])
    # null: exported from a tensor example (not an RGB model); it takes preprocessed tensors only
    data_config = {} if data_config is None else resolve_data_config(args=dict(data_config))
    if labels is None and LABELS_KEY in meta:
        labels = json.loads(meta[LABELS_KEY])
    return OnnxModel(path, session, data_config, labels, meta.get(ARCHITECTURE_KEY, path.stem))
