"""effnet_lab: EfficientNet built from its parts, for learning and for real use.

The public API mirrors timm's: `list_models`, `create_model`, `resolve_data_config`,
`create_transform`, plus `predict` for labelled top-k predictions.
"""

from .architecture import EfficientNetConfig, StageSpec, scaled_stages
from .data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    ImageLoadError,
    create_transform,
    data_path,
    imagenet_class_names,
    load_image,
    resolve_data_config,
)
from .model import EfficientNet, EfficientNetFeatures
from .predict import predict
from .registry import create_model, get_entry, list_models
from .weights import CheckpointError, PretrainedUnavailable, export_state_dict, save_weights

__version__ = "0.1.0"

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "INCEPTION_MEAN", "INCEPTION_STD", "CheckpointError",
    "EfficientNet", "EfficientNetConfig", "EfficientNetFeatures", "ImageLoadError",
    "PretrainedUnavailable", "StageSpec", "create_model", "create_transform", "data_path", "export_state_dict",
    "get_entry", "imagenet_class_names", "list_models", "load_image", "predict", "resolve_data_config",
    "save_weights", "scaled_stages",
]
