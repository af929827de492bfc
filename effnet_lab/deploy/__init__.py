"""Shipping a model: ONNX export, ONNX Runtime inference, int8 quantization.

    export_onnx(model, "model.onnx")            # dynamo exporter; data config + labels as metadata
    onnx_model = load_onnx("model.onnx")        # runs on ONNX Runtime; effnet_lab.predict accepts it
    quantize_int8("model.onnx", "model.int8.onnx", calibration="photos/")

Needs the `deploy` extra (onnx, onnxruntime, onnxscript). Without it, the first use of any name
here raises one ImportError that says which packages to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

NEEDED = ("onnx", "onnxruntime", "onnxscript")

_EXPORTS = {"export_onnx": "export", "onnx_metadata": "export", "load_onnx": "runtime", "OnnxModel": "runtime",
            "quantize_int8": "quantize", "calibration_images": "quantize", "agreement": "check",
            "folder_accuracy": "check", "quantization_error_by_layer": "quantize"}
__all__ = sorted(_EXPORTS)


def require_deploy_extra() -> None:
    """Raise one clear ImportError when the deploy extra is not installed."""
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"effnet_lab.deploy needs {', '.join(missing)}: install the deploy extra, "
                          "pip install 'effnet-lab[deploy]' (or: pip install onnx onnxruntime onnxscript)")


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'effnet_lab.deploy' has no attribute {name!r}")
    require_deploy_extra()
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
