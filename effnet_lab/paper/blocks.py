"""The block kinds a stage can be built from, and what one block of each kind costs. No torch.

This is the one table of block kinds (`BLOCK_KINDS`). A stage of the architecture names its
kind (`StageSpec.block`); everything that depends on the kind looks it up here:

    the torch module that builds it     `BlockKind.module`, a class in `effnet_lab.model.blocks`
                                        (named, not imported: this layer has no torch)
    its analytic cost                   `BlockKind.cost`, below
    its weight names in timm, torchvision, lukemelas
                                        derived from the parts its module has (expand, depthwise,
                                        se, project), in `effnet_lab.weights.layouts`

An unknown kind raises a `ValueError` naming it and the known kinds (`block_kind`), wherever it
is first used: building a model, costing one, or writing a stage table.

The channel arithmetic of a block lives here too, so the model and the cost model cannot drift
apart: `mbconv_mid`, `fused_mid`, `squeeze_channels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .scaling import round_channels


# ------------------------------------------------------------------------------ cost of a layer
@dataclass(frozen=True)
class Cost:
    """The cost of one part of the network (a layer, a block, a stage or the whole)."""

    params: int = 0
    macs: int = 0
    activations: int = 0  # output elements of conv/linear layers, one image
    elementwise: int = 0  # BN, activation, SE rescale, residual add, pooling (not in macs)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs,
                    self.activations + other.activations, self.elementwise + other.elementwise)


ZERO = Cost()


def conv_cost(in_ch: int, out_ch: int, kernel: int, out_res: int, groups: int = 1, bias: bool = False,
              bn: bool = True, act: bool = True) -> Cost:
    """A square k×k conv producing out_res × out_res, optionally followed by BN and activation."""
    weights = out_ch * (in_ch // groups) * kernel * kernel
    out_elems = out_ch * out_res * out_res
    params = weights + (out_ch if bias else 0) + (2 * out_ch if bn else 0)  # BN: scale and shift
    return Cost(params, weights * out_res * out_res, out_elems, out_elems * (int(bn) + int(act)))


def se_cost(channels: int, squeeze: int, res: int) -> Cost:
    """Squeeze-excitation on a channels × res × res map: pool → 1×1 conv → act → 1×1 conv → gate."""
    reduce = conv_cost(channels, squeeze, 1, 1, bias=True, bn=False, act=True)
    expand = conv_cost(squeeze, channels, 1, 1, bias=True, bn=False, act=True)  # act: the sigmoid
    pool_and_rescale = Cost(elementwise=2 * channels * res * res)  # read every element twice
    return reduce + expand + pool_and_rescale


# ------------------------------------------------------------------------------ channel arithmetic
def mbconv_mid(in_ch: int, expand: float) -> int:
    """MBConv's wide (expanded) width; expand 1 has nothing to expand and keeps `in_ch`."""
    return round_channels(in_ch * expand) if expand != 1 else in_ch


def fused_mid(in_ch: int, expand: float, mid_from: int | None = None) -> int:
    """FusedMBConv's wide width. `mid_from` sizes it from another channel count (a quirk of the
    EdgeTPU reference, whose first block expands as if its input had 24 channels)."""
    return round_channels((mid_from or in_ch) * expand)


def squeeze_channels(in_ch: int, se_ratio: float) -> int:
    """The SE bottleneck is sized from the block's *input* channels, but gates the expanded ones."""
    return max(1, int(in_ch * se_ratio))


def _se_and_skip(mid: int, in_ch: int, out_ch: int, stride: int, out_res: int, se: float, skip: bool) -> Cost:
    cost = se_cost(mid, squeeze_channels(in_ch, se), out_res) if se else ZERO
    if skip and stride == 1 and in_ch == out_ch:
        cost += Cost(elementwise=out_ch * out_res * out_res)  # residual add
    return cost


# ------------------------------------------------------------------------------ cost of a block
def mbconv_cost(in_ch: int, out_ch: int, kernel: int, stride: int, expand: float, in_res: int,
                se: float = 0.25, skip: bool = True, mid_from: int | None = None,
                always_project: bool = False) -> Cost:
    """1×1 expand (unless expand is 1) → k×k depthwise → SE → 1×1 linear projection (always)."""
    out_res = math.ceil(in_res / stride)
    mid = mbconv_mid(in_ch, expand)
    cost = conv_cost(in_ch, mid, 1, in_res) if expand != 1 else ZERO
    cost += conv_cost(mid, mid, kernel, out_res, groups=mid)
    cost += conv_cost(mid, out_ch, 1, out_res, act=False)
    return cost + _se_and_skip(mid, in_ch, out_ch, stride, out_res, se, skip)


def fused_cost(in_ch: int, out_ch: int, kernel: int, stride: int, expand: float, in_res: int,
               se: float = 0.0, skip: bool = True, mid_from: int | None = None,
               always_project: bool = False) -> Cost:
    """One full k×k conv expands (and strides) → SE → 1×1 linear projection. With expand 1 the
    k×k conv maps straight to the output channels and there is no projection (EfficientNetV2),
    unless `always_project` (timm's efficientnetv2_rw_s)."""
    out_res = math.ceil(in_res / stride)
    if expand == 1 and not always_project:
        return conv_cost(in_ch, out_ch, kernel, out_res) + _se_and_skip(out_ch, in_ch, out_ch, stride, out_res,
                                                                         se, skip)
    mid = fused_mid(in_ch, expand, mid_from)
    cost = conv_cost(in_ch, mid, kernel, out_res) + conv_cost(mid, out_ch, 1, out_res, act=False)
    return cost + _se_and_skip(mid, in_ch, out_ch, stride, out_res, se, skip)


# ------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class BlockKind:
    name: str  # as written in a stage table
    module: str  # the class in effnet_lab.model.blocks that builds it; also its label ("MBConv6 k5")
    cost: Callable[..., Cost]  # (in_ch, out_ch, kernel, stride, expand, in_res, se, skip, mid_from, always_project)


BLOCK_KINDS: dict[str, BlockKind] = {
    "mbconv": BlockKind("mbconv", "MBConv", mbconv_cost),  # expand 1 = depthwise-separable
    "fused": BlockKind("fused", "FusedMBConv", fused_cost),  # EdgeTPU, EfficientNetV2
}


def block_kind(name: str) -> BlockKind:
    """The entry of `BLOCK_KINDS` for `name`; a ValueError naming the known kinds otherwise."""
    try:
        return BLOCK_KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown block kind {name!r}; known kinds: {sorted(BLOCK_KINDS)}") from None
