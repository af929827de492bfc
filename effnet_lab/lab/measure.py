"""Measuring a built network with torch: its parameters and the FLOPs torch counts.

The analytic counts are in `effnet_lab.paper.cost` (no torch); these measure the real modules,
so the workbook can show that both agree.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass, counted by torch (2 per multiply-add; convs and matmuls
    only: the SE's pooling, sigmoid and x·gate product are element-wise and not counted)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()
