"""The building blocks of EfficientNet, smallest first.

    ConvBnAct      conv → BatchNorm → activation (the activation may be absent)
    SqueezeExcite  a per-channel gate computed from the globally pooled features
    DropPath       stochastic depth: drop a whole residual branch per sample while training
    MBConv         the inverted residual block: 1×1 expand → k×k depthwise → SE → 1×1 project
    FusedMBConv    its sibling: one k×k conv does expand and depthwise (timm: "EdgeResidual")

Stage 2 of B0 (the "depthwise-separable" block) is simply an MBConv with expand ratio 1:
there is nothing to expand, so the 1×1 expansion conv is left out. Which class builds a
stage is decided by the one table of block kinds, `effnet_lab.paper.blocks.BLOCK_KINDS`
(`block_class` below).
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from ..paper.blocks import block_kind, fused_mid, mbconv_mid, squeeze_channels

ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6}


def make_activation(name: str | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name](inplace=True)


class SameConv2d(nn.Conv2d):
    """A conv with TensorFlow's "same" padding, needed to reuse weights trained in TF.

    TF pads so that out = ceil(in / stride). For stride 2 that pads more on the bottom/right
    than on the top/left, and how much depends on the input size, so no fixed symmetric
    `padding=` can reproduce it: we pad each input before convolving.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def make_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
              tf_same_padding: bool = False) -> nn.Conv2d:
    # For stride 1 and an odd kernel, TF "same" equals symmetric padding: use the plain conv.
    if tf_same_padding and stride > 1:
        return SameConv2d(in_ch, out_ch, kernel, stride, padding=0, groups=groups, bias=False)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)


class ConvBnAct(nn.Module):
    """conv → BatchNorm → activation; `fuse()` folds the BatchNorm into the conv for inference."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = "silu", bn_eps: float = 1e-5, tf_same_padding: bool = False):
        super().__init__()
        self.conv = make_conv(in_ch, out_ch, kernel, stride, groups, tf_same_padding)
        self.bn: nn.Module = nn.BatchNorm2d(out_ch, eps=bn_eps)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold BN into the conv: y = γ(Wx − μ)/σ + β  becomes  (γ/σ)W x + (β − γμ/σ)."""
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm2d):
            return  # already fused
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = bn.bias - bn.running_mean * scale
        if self.conv.bias is not None:
            bias = bias + self.conv.bias * scale
        self.conv.bias = nn.Parameter(bias)
        self.bn = nn.Identity()


class SqueezeExcite(nn.Module):
    """Squeeze (global average pool) → excite (two 1×1 convs, sigmoid) → rescale channels.

    The gate costs almost no FLOPs and lets each channel be turned up or down depending on
    what the whole image contains.
    """

    def __init__(self, channels: int, squeeze_channels: int, act: str = "silu"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = make_activation(act)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel gate in (0, 1), shape (N, C, 1, 1)."""
        s = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.expand(self.act(self.reduce(s))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero the whole residual branch for a random subset of samples; rescale the rest."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


class ResidualBlock(nn.Module):
    """What MBConv and FusedMBConv share: the skip connection, where shapes allow it (stride 1,
    equal channels), with stochastic depth on the branch; and the list of their parts."""

    PARTS: tuple[str, ...] = ()  # sub-modules in forward order; an absent one is None

    def _init_skip(self, in_ch: int, out_ch: int, stride: int, skip: bool, drop_path_rate: float) -> None:
        self.has_skip = skip and stride == 1 and in_ch == out_ch
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate else None

    def _add_skip(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if not self.has_skip:
            return x
        if self.drop_path is not None:
            x = self.drop_path(x)
        return x + shortcut

    def parts(self) -> tuple[str, ...]:
        """The parts this block has, in forward order (weight layouts are named from them)."""
        return tuple(p for p in self.PARTS if getattr(self, p) is not None)


class MBConv(ResidualBlock):
    """Mobile inverted bottleneck: narrow → wide (expand) → depthwise k×k → SE → narrow (project).

    The residual connection joins the two *narrow* ends, when shapes allow it (stride 1 and
    equal channels). The projection has no activation: squashing a narrow tensor through a
    nonlinearity destroys information (MobileNetV2's "linear bottleneck").
    """

    PARTS = ("expand", "depthwise", "se", "project")

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: float,
                 se_ratio: float = 0.25, act: str = "silu", drop_path_rate: float = 0.0,
                 bn_eps: float = 1e-5, tf_same_padding: bool = False, skip: bool = True,
                 mid_from: int | None = None, always_project: bool = False):
        super().__init__()  # mid_from, always_project: FusedMBConv's options (MBConv always projects)
        mid = mbconv_mid(in_ch, expand_ratio)
        opts = dict(bn_eps=bn_eps, tf_same_padding=tf_same_padding)
        self.expand = ConvBnAct(in_ch, mid, 1, act=act, **opts) if expand_ratio != 1 else None
        self.depthwise = ConvBnAct(mid, mid, kernel, stride, groups=mid, act=act, **opts)
        self.se = SqueezeExcite(mid, squeeze_channels(in_ch, se_ratio), act) if se_ratio else None
        self.project = ConvBnAct(mid, out_ch, 1, act=None, **opts)
        self._init_skip(in_ch, out_ch, stride, skip, drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.expand is not None:
            x = self.expand(x)
        x = self.depthwise(x)
        if self.se is not None:
            x = self.se(x)
        x = self.project(x)
        return self._add_skip(x, shortcut)  # joins the two narrow ends


class FusedMBConv(ResidualBlock):
    """MBConv's sibling: one full k×k conv replaces the 1×1 expansion and the depthwise conv.

    A full k×k conv has more FLOPs than a depthwise one but runs better on accelerators that
    are poor at depthwise convs, so EfficientNet-EdgeTPU and EfficientNetV2 use it in the early,
    wide-spatial stages. With expand ratio 1 the k×k conv maps straight to the output channels
    and there is no projection (EfficientNetV2's first stage), unless `always_project` (timm's
    efficientnetv2_rw_s). `mid_from` sizes the expansion from another channel count (a quirk of
    the EdgeTPU reference).
    """

    PARTS = ("expand", "se", "project")

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: float,
                 se_ratio: float = 0.0, act: str = "relu", drop_path_rate: float = 0.0,
                 bn_eps: float = 1e-5, tf_same_padding: bool = False, skip: bool = True,
                 mid_from: int | None = None, always_project: bool = False):
        super().__init__()
        project = expand_ratio != 1 or always_project
        mid = fused_mid(in_ch, expand_ratio, mid_from) if project else out_ch
        opts = dict(bn_eps=bn_eps, tf_same_padding=tf_same_padding)
        self.expand = ConvBnAct(in_ch, mid, kernel, stride, act=act, **opts)
        self.se = SqueezeExcite(mid, squeeze_channels(in_ch, se_ratio), act) if se_ratio else None
        self.project = ConvBnAct(mid, out_ch, 1, act=None, **opts) if project else None
        self._init_skip(in_ch, out_ch, stride, skip, drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.expand(x)
        if self.se is not None:
            x = self.se(x)
        if self.project is not None:
            x = self.project(x)
        return self._add_skip(x, shortcut)


def block_class(kind: str) -> type[nn.Module]:
    """The module class that builds blocks of `kind`, as named in the one table of block kinds
    (`effnet_lab.paper.blocks.BLOCK_KINDS`); a ValueError naming the known kinds otherwise."""
    return getattr(sys.modules[__name__], block_kind(kind).module)
