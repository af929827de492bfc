"""What an EfficientNet costs, computed from its config alone: parameters, FLOPs, memory.

Torch-free and analytic (a loop over the ~20–80 layers of `scaled_stages`), so the scaling
sliders can recompute the cost of any network up to B7 and beyond in about a millisecond,
without building a model. The numbers are exact for `model.EfficientNet`, and the tests
prove it against the built model and torch's FLOP counter.

Conventions (the same as the paper's Table 2 and torchvision's `GFLOPS` metadata):

params
    Every trainable number of `EfficientNet(config, num_classes, in_chans)`: conv weights,
    conv biases (only the squeeze-excitation convs have them), BatchNorm scale and shift
    (running statistics are buffers, not parameters) and the classifier. Equals
    `sum(p.numel() for p in model.parameters())`.

macs ("FLOPs")
    Multiply-accumulates of the convolutions and the classifier for one image:
    out_H · out_W · out_C · (in_C / groups) · k² per conv, in · out for the classifier.
    This is what the paper calls FLOPs (B0: 0.39B) and what torchvision publishes as
    GFLOPS (B0: 0.386); `torch.utils.flop_counter.FlopCounterMode` reports exactly 2 × this
    (it counts a multiply and an add). Bias additions, BatchNorm, activations, the SE
    rescaling (x · gate), residual additions and pooling are *not* counted: they are
    element-wise, memory-bound, and excluded by all three conventions. They would add
    roughly `elementwise` operations (see below) on top.

activations
    The number of elements in the output of every conv and linear layer for one image
    (stem, each expand / depthwise / SE-reduce / SE-expand / project conv, head conv,
    classifier). It is the size of the feature maps a forward pass produces, as if BatchNorm
    and the activation ran in place; a training step stores a small multiple of it for the
    backward pass. `activation_mb` is that count × 4 bytes (fp32) in MB (10⁶ bytes).

elementwise
    An indicative count of the element-wise operations the MAC count leaves out: one per
    output element of each BatchNorm, activation, SE rescale and residual add, plus the
    elements read by each global pooling. Not part of any published figure.

    >>> from effnet_lab.paper.architecture import EfficientNetConfig
    >>> c = count_cost(EfficientNetConfig())          # B0 at 224
    >>> c.params, round(c.gmacs, 3)
    (5288548, 0.386)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .architecture import EfficientNetConfig, ScaledStage, scaled_stages
from .blocks import ZERO, Cost, block_kind, conv_cost

BYTES_FP32 = 4


@dataclass(frozen=True)
class StageCost:
    """One row of the per-stage table: the stem, a stage of blocks, the head or the classifier."""

    name: str  # "stem", "stage 2" … "stage 8" (Table 1's numbers), "head", "classifier"
    block: str  # "conv3x3", "MBConv6 k5" …, "conv1x1", "pool+fc"
    kernel: int
    stride: int
    out_channels: int
    repeats: int
    in_resolution: int
    out_resolution: int
    cost: Cost

    @property
    def params(self) -> int:
        return self.cost.params

    @property
    def macs(self) -> int:
        return self.cost.macs

    @property
    def activations(self) -> int:
        return self.cost.activations


@dataclass(frozen=True)
class CostReport:
    """The whole network: one row per stage and the totals."""

    resolution: int
    stages: tuple[StageCost, ...]
    total: Cost

    @property
    def params(self) -> int:
        return self.total.params

    @property
    def macs(self) -> int:
        return self.total.macs

    @property
    def gmacs(self) -> float:
        """Billions of multiply-adds: the paper's "FLOPs" column, torchvision's GFLOPS."""
        return self.total.macs / 1e9

    @property
    def activations(self) -> int:
        return self.total.activations

    @property
    def activation_mb(self) -> float:
        return self.total.activations * BYTES_FP32 / 1e6


# ------------------------------------------------------------------------------ stages
def _stage_cost(s: ScaledStage) -> Cost:
    block_cost = block_kind(s.block).cost
    total = ZERO
    in_ch, res = s.in_channels, s.in_resolution
    for j in range(s.repeats):
        stride = s.stride if j == 0 else 1
        total += block_cost(in_ch, s.out_channels, s.kernel, stride, s.expand, res, s.se, s.skip, s.mid_from,
                            s.always_project)
        in_ch, res = s.out_channels, math.ceil(res / stride)
    return total


def _block_label(s: ScaledStage) -> str:
    return f"{block_kind(s.block).module}{s.expand:g} k{s.kernel}"


# ------------------------------------------------------------------------------ the network
def count_cost(config: EfficientNetConfig, resolution: int | None = None, num_classes: int = 1000,
               in_chans: int = 3) -> CostReport:
    """Per-stage and total params, MACs and activations of `EfficientNet(config)`.

    resolution: the input size (default: `config.resolution`). Params do not depend on it.
    """
    res = resolution or config.resolution
    stages = scaled_stages(config, res)
    stem_res = math.ceil(res / config.stem_stride)
    rows = [StageCost("stem", "conv3x3", 3, config.stem_stride, config.stem_out, 1, res, stem_res,
                      conv_cost(in_chans, config.stem_out, 3, stem_res))]
    for s in stages:
        rows.append(StageCost(f"stage {s.paper_stage}", _block_label(s), s.kernel, s.stride, s.out_channels,
                              s.repeats, s.in_resolution, s.out_resolution, _stage_cost(s)))
    last = stages[-1]
    final_res = last.out_resolution
    rows.append(StageCost("head", "conv1x1", 1, 1, config.head_out, 1, final_res, final_res,
                          conv_cost(last.out_channels, config.head_out, 1, final_res)))
    head = config.head_out
    pool = Cost(elementwise=head * final_res * final_res)
    fc = Cost(head * num_classes + num_classes, head * num_classes, num_classes) if num_classes else ZERO
    rows.append(StageCost("classifier", "pool+fc", 1, 1, num_classes or head, 1, final_res, 1, pool + fc))
    total = ZERO
    for r in rows:
        total += r.cost
    return CostReport(res, tuple(rows), total)


def count_params(config: EfficientNetConfig, num_classes: int = 1000, in_chans: int = 3) -> int:
    """Trainable parameters of `EfficientNet(config, num_classes, in_chans)`."""
    return count_cost(config, 32, num_classes, in_chans).params


def count_macs(config: EfficientNetConfig, resolution: int | None = None, num_classes: int = 1000,
               in_chans: int = 3) -> int:
    """Conv + linear multiply-adds for one image (paper "FLOPs"; FlopCounterMode / 2)."""
    return count_cost(config, resolution, num_classes, in_chans).macs


def activation_mb(config: EfficientNetConfig, resolution: int | None = None) -> float:
    """Output elements of every conv/linear layer for one image, as fp32 megabytes (10⁶ B)."""
    return count_cost(config, resolution).activation_mb
