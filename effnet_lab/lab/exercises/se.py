"""Exercises for notebooks/02_squeeze_excitation.ipynb. Every answer is computed by building
the real modules of EfficientNet-B0 and measuring them (weights do not matter for shapes,
parameter counts or FLOPs, so these models are never trained)."""

from __future__ import annotations

import torch

from ...model.network import EfficientNet
from ...paper.architecture import EfficientNetConfig
from ..measure import count_flops
from . import exercise


def _b0() -> EfficientNet:
    return EfficientNet(EfficientNetConfig())  # B0


@exercise(
    "se.squeeze_width",
    "B0's first block of paper stage 6 (MBConv6, k5×5, 80 → 112 channels) has an SE module. "
    "How many channels does it gate, and how wide is its bottleneck (squeeze width)? "
    "Answer a tuple (gated channels, squeeze width).",
    "SE sits after the depthwise conv, so it gates the *expanded* channels (input × 6). Its "
    "bottleneck is sized from the block's *input* channels × 0.25, not from the gated ones.",
    "The block's input has 80 channels; expansion ×6 gives 480 channels after the depthwise "
    "conv, and those are what the SE gates. The squeeze width is int(80 × 0.25) = 20 (not "
    "480 / 4 = 120, as the SE paper's C/r would give). In effnet_lab this is "
    "`model.stages[4][0].se`: `se.reduce` is Conv2d(480, 20, 1), `se.expand` Conv2d(20, 480, 1).",
)
def squeeze_width() -> tuple[int, int]:
    se = _b0().stages[4][0].se
    return (se.reduce.in_channels, se.reduce.out_channels)


@exercise(
    "se.params",
    "How many parameters (weights and biases) does the SE module of B0's last MBConv block "
    "(paper stage 8: MBConv6, k3×3, 192 → 320 channels) have?",
    "Work out C (the gated, expanded channels) and C' (the squeeze width, from the block's input "
    "channels). Two 1×1 convs with biases: C·C' + C' and C'·C + C.",
    "The block's input has 192 channels, so C = 6 × 192 = 1152 gated channels and "
    "C' = int(192 × 0.25) = 48. reduce: 1152·48 + 48 = 55,344; expand: 48·1152 + 1152 = 56,448; "
    "total 111,792 — about 16% of the whole block's parameters. Check: "
    "`sum(p.numel() for p in model.stages[6][0].se.parameters())`.",
)
def se_params() -> int:
    return sum(p.numel() for p in _b0().stages[6][0].se.parameters())


def _flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    return count_flops(module.eval(), x)


@exercise(
    "se.flops_share",
    "What percentage of the FLOPs of that same block (B0's last MBConv block, at B0's 224×224 "
    "input, where the block sees a 7×7 feature map) does its SE module account for? Measure with "
    "torch.utils.flop_counter.FlopCounterMode; answer in percent (e.g. 2.5 for 2.5%), two "
    "significant digits are enough.",
    "Count the block on a (1, 192, 7, 7) input and the SE module on what it sees, "
    "(1, 1152, 7, 7). The SE convs run on a 1×1 pooled vector, so they do not scale with H×W.",
    "FlopCounterMode counts 2 FLOPs per multiply-add in convs. The SE's two 1×1 convs act on "
    "the pooled 1152-vector: 2·(1152·48 + 48·1152) = 221,184 FLOPs, whatever the map size. "
    "The block's 1×1 expand and project convs act on all 7·7 = 49 positions: 2·49·(192·1152 + "
    "1152·320) ≈ 57.8M FLOPs, plus the depthwise conv's 1.0M. SE ≈ 0.37% of the FLOPs, while "
    "it holds ≈ 16% of the parameters: cheap to run, not cheap to store.",
    tolerance=0.05,
)
def se_flops_share() -> float:
    block = _b0().stages[6][0]
    x = torch.zeros(1, 192, 7, 7)
    mid = torch.zeros(1, block.se.expand.out_channels, 7, 7)
    return 100 * _flops(block.se, mid) / _flops(block, x)
