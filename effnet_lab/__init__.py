"""effnet_lab: EfficientNet built from its parts, for learning and for real use.

The public API mirrors timm's: `list_models`, `create_model`, `resolve_data_config`,
`create_transform`, plus `predict` for labelled top-k predictions.

The package is a few subpackages, one per concept, with dependencies pointing one way:

    paper/    scaling rules, stage tables, block kinds, analytic cost (no torch)
    model/    blocks, the network, the registry and create_model, predict
    weights/  safe checkpoint reading, atomic writing, layout maps, pretrained sources
    data/     data configs, transforms, image decoding, image folders, class names
    train/    TrainConfig, the training loop, Trainer, the command line
    lab/      the workbook's tools: explain (captum), plots, widgets, studies, exercises

Names are loaded lazily (PEP 562): `import effnet_lab` costs nothing until a name that
needs torch is first used, so `effnet_lab.paper` stays torch-free.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "EfficientNetConfig": "paper.architecture",
    "StageSpec": "paper.architecture",
    "scaled_stages": "paper.architecture",
    "EfficientNet": "model.network",
    "EfficientNetFeatures": "model.network",
    "create_model": "model.registry",
    "get_entry": "model.registry",
    "list_models": "model.registry",
    "predict": "model.predict",
    "pick_device": "model.device",
    "CheckpointError": "weights.checkpoint",
    "PretrainedUnavailable": "weights.pretrained",
    "export_state_dict": "weights.layouts",
    "save_weights": "weights.layouts",
    "IMAGENET_MEAN": "data.config",
    "IMAGENET_STD": "data.config",
    "INCEPTION_MEAN": "data.config",
    "INCEPTION_STD": "data.config",
    "resolve_data_config": "data.config",
    "create_transform": "data.transforms",
    "ImageLoadError": "data.images",
    "load_image": "data.images",
    "data_path": "data.resources",
    "imagenet_class_names": "data.resources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'effnet_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
