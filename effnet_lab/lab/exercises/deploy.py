"""Exercises for notebook 08 (deployment). The implement-it checks run the learner's function on
random inputs and compare it with peers we did not write: ONNX Runtime's own scale/zero-point
rule (`onnxruntime.quantization.quant_utils.compute_scale_zp`) and torch's fake quantization."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import agrees_on_cases, exercise, letters

_TRIALS = 200


def _ranges(seed: int = 0) -> list[tuple[float, float]]:
    """(min, max) pairs as a calibrator meets them: all positive (after ReLU6), all negative,
    straddling zero, tiny and huge."""
    g = np.random.default_rng(seed)
    pairs = [(0.0, 6.0), (-33.2, 41.0), (0.25, 4.0), (-5.0, -0.5)]
    for _ in range(_TRIALS):
        a, b = sorted(g.normal(0, 10 ** g.uniform(-2, 2), size=2).tolist())
        pairs.append((a, b))
    return pairs


def _peer_scale_zp(rmin: float, rmax: float) -> tuple[float, int]:
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    zp, scale = compute_scale_zp(np.float32(rmin), np.float32(rmax), np.uint8(0), np.uint8(255))
    return float(scale), int(zp)


def _scale_zp_right(fn: Any) -> bool:
    def same(got: Any, want: tuple[float, int]) -> bool:
        scale, zp = got
        return bool(np.isclose(float(scale), want[0], rtol=1e-5)) and int(zp) == want[1]

    return agrees_on_cases(fn, (((lo, hi), _peer_scale_zp(lo, hi)) for lo, hi in _ranges()), same)


@exercise(
    "deploy.scale_zero_point",
    question="Write scale_zero_point(rmin, rmax) -> (scale, zero_point) for uint8 (0 … 255) asymmetric "
             "quantization, the rule ONNX Runtime uses for activations: real value ≈ scale · (q − zero_point).",
    hint="Three steps. (1) Stretch the range to include 0 (rmin = min(rmin, 0), rmax = max(rmax, 0)): a zero "
         "activation (padding, ReLU's zeros) must be exact. (2) scale = (rmax − rmin) / 255: 256 levels span "
         "the range. (3) zero_point = round(0 − rmin / scale): the integer that stands for 0.0. Try your "
         "function on (0, 6) — ReLU6's range — which must give (6/255, 0), and on (-1, 1), which gives zero "
         "point 128 (numpy rounds halves to even, as ONNX Runtime does).",
    solution="def scale_zero_point(rmin, rmax):\n    rmin, rmax = min(rmin, 0.0), max(rmax, 0.0)\n"
             "    scale = (rmax - rmin) / 255\n    return scale, round(-rmin / scale)\n"
             "(Python's round, like numpy's and ONNX Runtime's, rounds halves to even. ONNX Runtime also "
             "guards a zero range with scale 1, which the checked ranges never have.)",
    accept=_scale_zp_right,
)
def scale_zero_point() -> Callable[[float, float], tuple[float, int]]:
    return _peer_scale_zp


def _fake_quant_right(fn: Any) -> bool:
    def cases():
        g = torch.Generator().manual_seed(0)
        for rmin, rmax in _ranges()[:60]:
            scale, zp = _peer_scale_zp(rmin, rmax)
            x = torch.empty(1000).uniform_(rmin - abs(rmin) * 0.5 - 0.1, rmax + abs(rmax) * 0.5 + 0.1, generator=g)
            yield (x, scale, zp), (x, scale, zp)

    def same(got: Any, case: tuple[torch.Tensor, float, int]) -> bool:
        x, scale, zp = case
        got = torch.as_tensor(got, dtype=torch.float32)
        want = torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 255)
        return got.shape == want.shape and torch.allclose(got, want, rtol=0, atol=scale * 1e-3)

    return agrees_on_cases(fn, cases(), same)


@exercise(
    "deploy.fake_quant",
    question="Write fake_quant(x, scale, zero_point): quantize the tensor x to uint8 and back to float — what "
             "every QuantizeLinear → DequantizeLinear pair in the int8 file does to an activation.",
    hint="q = clamp(round(x / scale) + zero_point, 0, 255), then (q − zero_point) · scale. Values outside the "
         "calibrated range are clipped (the clamp) — that is the clipping error; everything inside moves to the "
         "nearest of 256 levels — that is the rounding error, at most scale / 2. Use torch.round and "
         "torch.clamp.",
    solution="def fake_quant(x, scale, zero_point):\n"
             "    q = torch.clamp(torch.round(x / scale) + zero_point, 0, 255)\n"
             "    return (q - zero_point) * scale\n"
             "torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255) is the same thing.",
    accept=_fake_quant_right,
)
def fake_quant() -> Callable[[torch.Tensor, float, int], torch.Tensor]:
    return lambda x, scale, zp: torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 255)


_LITE_CHANGES = {"a", "b"}


@exercise(
    "deploy.lite_changes",
    question="Which of Lite's design choices make it friendlier to per-tensor int8 activations? Give the "
             "letters, e.g. {'a', 'c'}. (a) ReLU6 bounds every expanded activation to [0, 6]; (b) no "
             "squeeze-excitation, so no per-image sigmoid gate rescales the channels; (c) fewer parameters; "
             "(d) the stem and head keep 32 and 1280 channels at every size.",
    hint="One scale and zero point per tensor must cover every image the model will see. Ask of each choice: "
         "does it change the range of values an activation tensor takes, or how much that range moves from one "
         "image to the next? A choice that only changes how much work there is does not.",
    solution="(a) and (b). ReLU6 caps the range a calibrator must cover (SiLU is unbounded above); the SE gate "
             "multiplies each channel by a per-image number in (0, 1), so the ranges after it move with the "
             "image. (c) and (d) are about size and cost. Section 8.8 measures whether it matters here.",
    accept=letters(_LITE_CHANGES),
)
def lite_changes() -> list[str]:
    return sorted(_LITE_CHANGES)
