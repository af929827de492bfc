"""Measuring a built network with torch: its parameters and the FLOPs torch counts.

The analytic counts are in `effnet_lab.paper.cost` (no torch); these measure the real modules,
so the workbook can show that both agree. `interleaved` times candidates fairly against each other
(the studies and the benchmark scripts use it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

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


def interleaved(steps: dict[str, Callable[[], None]], iters: int, rounds: int, warmup: int,
                batch: int, sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """images/s of every timed step of each candidate.

    Candidates take turns one step at a time (rounds × iters turns each, the order rotating
    every turn), so a burst of background load lands on all of them, not on one. `sync` is
    called before reading the clock (torch.cuda.synchronize on a GPU).
    """
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    sync()
    rates: dict[str, list[float]] = {n: [] for n in names}
    for turn in range(rounds * iters):
        k = turn % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            steps[name]()
            sync()
            rates[name].append(batch / (time.perf_counter() - t0))
    return rates
