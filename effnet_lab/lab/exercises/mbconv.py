"""Exercises for notebook 01 (MBConv). Every answer is computed from torch modules."""

from __future__ import annotations

import torch
from torch import nn

from ...model.blocks import MBConv
from ...model.registry import create_model
from ..measure import count_flops
from . import exercise


def _macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass (torch's counter reports FLOPs = 2 × multiply-adds)."""
    return count_flops(module.eval(), torch.zeros(shape)) // 2


@exercise(
    "mbconv.params",
    question="How many parameters (all of them: convs, BatchNorms, SE) does "
             "MBConv(in_ch=40, out_ch=80, kernel=3, stride=2, expand_ratio=6) have? "
             "It is B0's block stages.3.0, with SE ratio 0.25.",
    hint="Expanded width 40·6 = 240; SE squeeze width int(40·0.25) = 10 (from the *input* channels). "
         "Add expand 1×1 (40·240), depthwise 3×3 (9·240), SE (240·10 + 10 and 10·240 + 240, with biases), "
         "project 1×1 (240·80), and 2 per channel for each BatchNorm (γ and β).",
    solution="expand  40·240 + 2·240        = 10080\n"
             "depthwise 9·240 + 2·240       =  2640\n"
             "SE  240·10 + 10 + 10·240 + 240 =  5050\n"
             "project 240·80 + 2·80         = 19360\n"
             "total                          = 37130\n"
             "Check: sum(p.numel() for p in MBConv(40, 80, 3, 2, 6).parameters())",
)
def params() -> int:
    return sum(p.numel() for p in MBConv(40, 80, 3, 2, 6).parameters())


@exercise(
    "mbconv.flops_saving",
    question="A regular 3×3 conv maps 32 → 64 channels on a 56×56 map (stride 1, no bias). By what factor "
             "does a depthwise-separable conv (3×3 depthwise on 32 channels, then 1×1 32 → 64) cut its "
             "multiply-adds? Give the ratio regular / separable (2 decimals are enough).",
    hint="Regular: k²·C_in·C_out·H·W. Separable: k²·C_in·H·W + C_in·C_out·H·W. H·W and C_in cancel: "
         "the factor is 1 / (1/C_out + 1/k²).",
    solution="regular    9·32·64·56·56 = 57,802,752\n"
             "separable (9·32 + 32·64)·56·56 = 7,323,648\n"
             "ratio = 9·64 / (9 + 64) = 576 / 73 ≈ 7.89\n"
             "Measure it: wrap FlopCounterMode around nn.Conv2d(32, 64, 3, padding=1, bias=False) and\n"
             "around nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False),\n"
             "nn.Conv2d(32, 64, 1, bias=False)), each on torch.zeros(1, 32, 56, 56).",
    tolerance=5e-3,
)
def flops_saving() -> float:
    shape = (1, 32, 56, 56)
    regular = nn.Conv2d(32, 64, 3, padding=1, bias=False)
    separable = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False),
                              nn.Conv2d(32, 64, 1, bias=False))
    return _macs(regular, shape) / _macs(separable, shape)


@exercise(
    "mbconv.skips",
    question="How many of EfficientNet-B0's 16 MBConv blocks have a residual (skip) connection?",
    hint="A block can add its input to its output only when the shapes match: stride 1 and in_ch == out_ch. "
         "The first block of every stage changes the channels (or the stride), the others do not.",
    solution="Stages have 1, 2, 2, 3, 3, 4, 1 blocks. The first block of each stage changes channels, so it has "
             "no skip; every repeat has one: 0 + 1 + 1 + 2 + 2 + 3 + 0 = 9.\n"
             "Check: sum(b.has_skip for stage in model.stages for b in stage)",
)
def skips() -> int:
    model = create_model("efficientnet_b0")
    return sum(int(b.has_skip) for stage in model.stages for b in stage)


@exercise(
    "mbconv.drop_path",
    question="In create_model('efficientnet_b0', drop_path_rate=0.2), what is the drop-path rate of block "
             "stages.5.2 (stage 5, third block)?",
    hint="Number the 16 blocks 0…15 across all stages (stages have 1, 2, 2, 3, 3, 4, 1 blocks); "
         "block i gets rate · i / 16.",
    solution="Blocks before stage 5: 1 + 2 + 2 + 3 + 3 = 11, so stages.5.2 is block 13.\n"
             "rate = 0.2 · 13 / 16 = 0.1625 (it has a skip, so the rate is used).\n"
             "Check: model.stages[5][2].drop_path.p",
)
def drop_path() -> float:
    model = create_model("efficientnet_b0", drop_path_rate=0.2)
    return model.stages[5][2].drop_path.p
