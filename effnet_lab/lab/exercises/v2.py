"""Exercises for notebook 09 (EfficientNetV2). The Fused-MBConv count is checked against
torchvision's own FusedMBConv block, built for each random case; the progressive-learning size
against the trainer's schedule (`effnet_lab.train.progressive`) that notebook 09 runs."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from . import agrees_on_cases, exercise, letters

_TRIALS = 60


def _fused_cases(seed: int = 0) -> list[tuple[int, int, int, int, int]]:
    """(in_ch, out_ch, expand, kernel, stride): V2's own stages first, then random ones. Channels
    are multiples of 8, so torchvision's rounding of the wide width changes nothing."""
    g = random.Random(seed)
    cases = [(24, 24, 1, 3, 1), (24, 48, 4, 3, 2), (48, 64, 4, 3, 2), (32, 32, 1, 3, 1)]
    for _ in range(_TRIALS):
        cases.append((8 * g.randint(1, 40), 8 * g.randint(1, 40), g.choice((1, 2, 3, 4, 6)), g.choice((3, 5)),
                      g.choice((1, 2))))
    return cases


def _torchvision_fused_params(in_ch: int, out_ch: int, expand: int, kernel: int, stride: int) -> int:
    from torchvision.models.efficientnet import FusedMBConv, FusedMBConvConfig

    block = FusedMBConv(FusedMBConvConfig(expand, kernel, stride, in_ch, out_ch, 1), 0.0,
                        partial(nn.BatchNorm2d, eps=1e-3))
    return sum(p.numel() for p in block.parameters())


def _fused_params_right(fn: Any) -> bool:
    cases = (((i, o, e, k), _torchvision_fused_params(i, o, e, k, stride)) for i, o, e, k, stride in _fused_cases())
    return agrees_on_cases(fn, cases, lambda got, want: int(got) == want)


@exercise(
    "v2.fused_params",
    question="Write fused_mbconv_params(in_ch, out_ch, expand, kernel) -> the number of parameters of one "
             "Fused-MBConv block without SE (V2's early stages), BatchNorm included.",
    hint="Two cases. With expand > 1 there are two convs: a full kernel×kernel conv from in_ch to mid = "
         "in_ch·expand channels (kernel²·in_ch·mid weights: every output channel sees every input channel), then "
         "a 1×1 projection to out_ch (mid·out_ch). With expand = 1 there is only the kernel×kernel conv, straight "
         "to out_ch. No conv has a bias; each conv is followed by a BatchNorm with 2 learnable numbers per channel "
         "(the running mean and variance are buffers, not parameters). The stride changes the output size, not "
         "the weights. Check yourself on section 9.2's figure: (48, 48, 4, 3) is 83,328 + 9,312 = 92,640; and "
         "(24, 24, 1, 3) gives 5,232.",
    solution="def fused_mbconv_params(in_ch, out_ch, expand, kernel):\n"
             "    if expand == 1:  # one k×k conv, no projection\n"
             "        return kernel * kernel * in_ch * out_ch + 2 * out_ch\n"
             "    mid = in_ch * expand\n"
             "    return kernel * kernel * in_ch * mid + 2 * mid + mid * out_ch + 2 * out_ch\n"
             "# The MBConv it replaces spends in_ch·mid + kernel²·mid + mid·out_ch weights: its k×k conv is\n"
             "# depthwise, kernel² weights per channel instead of kernel²·in_ch.",
    accept=_fused_params_right,
)
def fused_params() -> Callable[..., int]:
    return lambda in_ch, out_ch, expand, kernel: _torchvision_fused_params(in_ch, out_ch, expand, kernel, 1)


def _progressive_cases(seed: int = 0) -> list[tuple[int, int, int, int, int]]:
    """(epoch, epochs, stages, start, end): the paper's V2-S setting (350 epochs, 4 stages,
    128 → 300 px), one stage, equal sizes, and random runs."""
    g = random.Random(seed)
    cases = [(e, 350, 4, 128, 300) for e in (0, 87, 88, 175, 262, 263, 349)]
    cases += [(3, 8, 1, 14, 28), (5, 10, 3, 64, 64)]
    for _ in range(_TRIALS):
        epochs = g.randint(1, 400)
        start = g.randint(8, 300)
        cases.append((g.randrange(epochs), epochs, g.randint(1, min(epochs, 8)), start, start + g.randint(0, 300)))
    return cases


def _library_size(epoch: int, epochs: int, stages: int, start: int, end: int) -> int:
    from ...train.progressive import progressive_schedule, stage_of

    return stage_of(progressive_schedule(epochs, stages, start, end), epoch).size


def _train_size_right(fn: Any) -> bool:
    def cases():
        for epoch, epochs, stages, start, end in _progressive_cases():
            i = epoch * stages // epochs
            exact = start + (end - start) * i / (stages - 1) if stages > 1 else end
            yield (epoch, epochs, stages, start, end), (_library_size(epoch, epochs, stages, start, end), exact)

    def same(got: Any, expected: tuple[int, float]) -> bool:
        want, exact = expected
        half = (2 * exact) % 2 == 1  # x.5: rounding up or to even are both fine
        return int(got) == want or (half and abs(int(got) - exact) == 0.5)

    return agrees_on_cases(fn, cases(), same)


@exercise(
    "v2.train_size",
    question="Write train_size(epoch, epochs, stages, start, end) -> the training image size of 0-based `epoch` "
             "in a run of `epochs` epochs cut into `stages` equal stages, the size growing linearly from "
             "`start` (first stage) to `end` (last stage) — Algorithm 1 of the V2 paper.",
    hint="First find the stage: epoch e of E, in M stages, belongs to stage i = e·M // E (integer division: "
         "stage 0 holds the first E/M epochs). Then interpolate: size = start + (end − start)·i/(M − 1), rounded "
         "to an integer — stage 0 trains at `start`, stage M − 1 at `end`. One stage (M = 1) means no "
         "progression: train at `end` throughout. For V2-S (350 epochs, 4 stages, 128 → 300) epoch 100 is in "
         "stage 1 and trains at 185 px.",
    solution="def train_size(epoch, epochs, stages, start, end):\n"
             "    if stages == 1:\n"
             "        return end\n"
             "    i = epoch * stages // epochs\n"
             "    return round(start + (end - start) * i / (stages - 1))\n"
             "# effnet_lab.train.progressive.progressive_schedule returns the same sizes, with each stage's\n"
             "# regularisation strength.",
    accept=_train_size_right,
)
def train_size() -> Callable[..., int]:
    return _library_size


_FUSED_WHERE = {"a", "c"}


@exercise(
    "v2.fused_where",
    question="Why does EfficientNetV2 use Fused-MBConv in its early stages only? Give the letters, e.g. {'a', "
             "'d'}. (a) Early stages have few channels, so the full k×k conv's extra weights and FLOPs (they grow "
             "with channels²) are small, while their large feature maps make the depthwise conv slow for its "
             "FLOPs; (b) Fused-MBConv has fewer parameters than MBConv at the same channels; (c) in the late, wide "
             "stages the full conv's channels² cost dominates, so fused blocks there make the network slower, not "
             "faster; (d) a Fused-MBConv block cannot have squeeze-excitation.",
    hint="Compare the k×k conv of the two blocks at C input channels and expansion e: depthwise has k²·eC "
         "weights, the full conv k²·C·eC. Which one grows faster with C, and where in the network is C small? "
         "Then look at the table of section 9.3: what happened to the network with fused blocks everywhere? "
         "And for (d): is SE missing from V2's fused stages because it cannot be there, or because it was not "
         "worth it (look at FusedMBConv's __init__)?",
    solution="(a) and (c). (b) is false: at equal channels a fused block has several times MBConv's parameters "
             "(exercise 9.1). (d) is false: FusedMBConv takes an se_ratio like MBConv (timm's and this "
             "library's do); V2's search simply found SE not worth its memory traffic in the early stages.",
    accept=letters(_FUSED_WHERE),
)
def fused_where() -> list[str]:
    return sorted(_FUSED_WHERE)
