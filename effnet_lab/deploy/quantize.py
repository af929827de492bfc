"""Static int8 post-training quantization of an exported model with ONNX Runtime: QDQ format,
per-channel int8 weights, uint8 activations calibrated on images preprocessed exactly as the
model's data config says."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime import quantization as ortq
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..data.config import resolve_data_config
from ..data.folders import is_image_file
from ..data.images import ImageSource, load_image
from ..data.transforms import create_transform
from .export import onnx_metadata
from .files import check_output, save_onnx
from .runtime import load_onnx

log = logging.getLogger(__name__)

# No "entropy": through quantize_static, ONNX Runtime's entropy calibrator runs with 128 histogram
# bins and 128 quantized bins, so the only threshold it can pick is the full range — on Lite0 it
# gave every scale exactly as min-max did (checked with onnxruntime 1.32).
METHODS = {"minmax": ortq.CalibrationMethod.MinMax, "percentile": ortq.CalibrationMethod.Percentile}


def calibration_images(calibration: str | os.PathLike | Sequence[ImageSource]) -> list[ImageSource]:
    """The images of a folder (recursively, sorted) or the given list; refused when empty."""
    if isinstance(calibration, (str, os.PathLike)):
        folder = Path(calibration)
        if not folder.is_dir():
            raise FileNotFoundError(f"calibration folder {folder} does not exist (or is not a folder)")
        images: list[ImageSource] = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p)
                                           and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not images:
            raise ValueError(f"calibration folder {folder} holds no images (.jpg, .png, …)")
        return images
    images = list(calibration)
    if not images:
        raise ValueError("calibration is empty: give a folder of images or a non-empty list of them")
    return images


class _Batches(ortq.CalibrationDataReader):
    """Feeds preprocessed calibration batches to ONNX Runtime's calibrator."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self.input_name, self.batches = input_name, batches
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._it = iter(self.batches)


def _float_prefix(graph: onnx.GraphProto, module: str) -> list[str]:
    """The names of the nodes from the input up to the last one that uses `module`'s weights
    (initializers are named after the modules: stem.conv.weight, stages.1.0.expand.conv.weight).

    Only a prefix of the network is ever left in float: ONNX Runtime's graph optimizer quantizes
    the weights of a float Conv that sits between quantized tensors again, per tensor, and for a
    depthwise conv whose channels differ in scale ×100 that is far worse than the int8 it replaced
    (Lite0 with only stages.0's depthwise conv in float: KL to fp32 ×11, top-1 agreement 59 %)."""
    initializers = {i.name for i in graph.initializer}
    modules = [{name.rsplit(".", 2)[0] for name in node.input if name in initializers and "." in name}
               for node in graph.node]
    hits = [i for i, names in enumerate(modules) if any(n == module or n.startswith(module + ".") for n in names)]
    if not hits:
        tops = dict.fromkeys(".".join(n.split(".")[:2]) if n.startswith("stages.") else n.split(".")[0]
                             for names in modules for n in sorted(names))  # in network order
        raise ValueError(f"float_until={module!r} names no module of this model; choose one of {', '.join(tops)}")
    return [node.name for node in graph.node[:hits[-1] + 1]]


def quantize_int8(
    onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: str | os.PathLike | Sequence[ImageSource] | torch.Tensor,
    *,
    per_channel: bool = True,
    method: str = "minmax",
    max_images: int = 256,
    batch_size: int = 1,
    float_until: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Quantize an `export_onnx` file to int8 and return the new file's path.

    calibration: a folder of images (searched recursively) or a list of paths / PIL images,
    preprocessed with the file's own data config; or a (N, C, H, W) tensor already preprocessed
    (for data that is not image files, such as Fashion-MNIST). At most `max_images` are used.
    Every image is read before quantization starts, so a bad one fails fast, naming the file.
    method: "minmax" or "percentile" (ONNX Runtime's calibrators; percentile clips the 0.001 %
    tails). The metadata (data config, class names) is carried over, so `load_onnx` and
    `predict` use the int8 file like the fp32 one.
    float_until: a module name ("stem", "stages.0", "stages.1", …): everything from the input up
    to and including it stays fp32 (mixed precision), the rest is int8. The early, high-resolution
    layers are where per-tensor activation scales lose most (notebook 08).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be a positive integer, got {max_images!r}")
    source = load_onnx(onnx_path)  # checks the file and reads its data config
    out = check_output(out_path, overwrite, "int8 ONNX file")
    if out.resolve() == Path(onnx_path).resolve():
        raise ValueError(f"out_path {out} is the input file; choose another name")
    if float_until is not None:  # the name is checked before any work
        _float_prefix(onnx.load(os.fspath(onnx_path), load_external_data=False).graph, float_until)
    if isinstance(calibration, torch.Tensor):
        if calibration.ndim != 4 or calibration.shape[0] == 0 or calibration.shape[1] != source.input_shape[1]:
            raise ValueError(f"calibration tensor must be (N, {source.input_shape[1]}, H, W) with N ≥ 1, "
                             f"got {tuple(calibration.shape)}")
        tensors = list(calibration[:max_images].float().cpu())
    else:
        if not source.takes_images:
            raise ValueError(f"{onnx_path} takes preprocessed tensors (it was exported from a tensor example); "
                             "pass calibration as an (N, C, H, W) tensor")
        transform = create_transform(**resolve_data_config(source))
        tensors = [transform(load_image(item)) for item in calibration_images(calibration)[:max_images]]
    fixed_batch = source.input_shape[0] if isinstance(source.input_shape[0], int) else None
    step = fixed_batch or batch_size
    batches = [torch.stack(tensors[i:i + step]).numpy() for i in range(0, len(tensors), step)]
    if fixed_batch:  # a file exported with a fixed batch takes only full batches
        batches = [b for b in batches if b.shape[0] == fixed_batch] or [np.repeat(batches[0][:1], fixed_batch, 0)]

    with tempfile.TemporaryDirectory() as tmpdir:
        prepared = Path(tmpdir) / "prepared.onnx"
        # Shape inference and graph optimisation (BatchNorm folded into the convs) first, as
        # ONNX Runtime's quantization guide asks; then quantize with QDQ nodes.
        quant_pre_process(os.fspath(onnx_path), os.fspath(prepared))
        keep = _float_prefix(onnx.load(os.fspath(prepared)).graph, float_until) if float_until else []
        quantized = Path(tmpdir) / "int8.onnx"
        ortq.quantize_static(os.fspath(prepared), os.fspath(quantized), _Batches(source.input_name, batches),
                             quant_format=ortq.QuantFormat.QDQ, per_channel=per_channel,
                             activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QInt8,
                             calibrate_method=METHODS[method], nodes_to_exclude=keep)
        proto = onnx.load(os.fspath(quantized))
    save_onnx(proto, out, {**onnx_metadata(onnx_path),
                           "effnet_lab.quantization": f"int8 QDQ, {method}, per_channel={per_channel}, "
                                                      f"{len(tensors)} calibration images"
                                                      + (f", fp32 up to {float_until}" if float_until else "")})
    log.info("quantized %s to %s (%.1f MB, %d calibration images)", onnx_path, out, out.stat().st_size / 1e6,
             len(tensors))
    return out


def quantization_error_by_layer(fp32_path: str | os.PathLike, int8_path: str | os.PathLike,
                                images: Sequence[ImageSource], max_images: int = 8) -> list[tuple[str, float]]:
    """Where the int8 error enters: for every activation the int8 file quantizes, its
    signal-to-quantization-noise ratio in dB (higher is better; 20 dB = error a tenth of the
    signal) between the fp32 and the int8 file run on the same images, in network order.

    Built on ONNX Runtime's QDQ debugging helpers (`onnxruntime.quantization.qdq_loss_debug`):
    both graphs are made to output their intermediate tensors; the error of a tensor is the
    error accumulated up to it, not its own rounding alone."""
    from onnxruntime.quantization import qdq_loss_debug as debug

    source = load_onnx(fp32_path)
    if not source.takes_images:
        raise ValueError(f"{fp32_path} takes preprocessed tensors; quantization_error_by_layer needs images")
    transform = create_transform(**resolve_data_config(source))
    feeds = [{source.input_name: transform(load_image(i))[None].numpy()} for i in list(images)[:max_images]]
    if not feeds:
        raise ValueError("images is empty")
    with tempfile.TemporaryDirectory() as tmpdir:
        prepared, float_aug, int8_aug = (os.fspath(Path(tmpdir) / n) for n in ("p.onnx", "f.onnx", "q.onnx"))
        quant_pre_process(os.fspath(fp32_path), prepared)  # the graph quantize_int8 quantized: same names
        debug.modify_model_output_intermediate_tensors(prepared, float_aug)
        debug.modify_model_output_intermediate_tensors(os.fspath(int8_path), int8_aug)
        matched = debug.create_activation_matching(debug.collect_activations(int8_aug, feeds),
                                                   debug.collect_activations(float_aug, feeds))
        order = [out for node in onnx.load(prepared).graph.node for out in node.output]
    errors = debug.compute_activation_error(matched)
    return [(name, errors[name]["xmodel_err"]) for name in order if "xmodel_err" in errors.get(name, {})]
