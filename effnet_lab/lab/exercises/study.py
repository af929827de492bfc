"""Exercises for notebook 07 (the scaling study). Answers come from the committed study results
and from the cost module's exact counts of the networks the learner proposes."""

from __future__ import annotations

from typing import Any

from ...paper.architecture import B0_28PX
from ...paper.budget import match_budget
from ...paper.cost import count_macs
from . import exercise

BUDGET = 3.0


def _gains() -> dict[str, float]:
    """Mean test accuracy gained by each single dimension from 4× to 8× the baseline's FLOPs,
    in the committed results."""
    from ..studies import scaling as study

    preset = study.PRESETS["reduced"]
    rows = study.read_results(study.committed_results())
    mean = {(s.direction, s.budget): s.mean for s in
            study.summarize(rows, study.figure3_points(preset), preset.recipe, range(preset.seeds))}
    return {d: mean[(d, 8.0)] - mean[(d, 4.0)] for d in study.SINGLE if (d, 8.0) in mean and (d, 4.0) in mean}


def _same_word(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == saturates_first()


@exercise(
    "study.saturates_first",
    question="In the committed results, which single dimension gains the least accuracy (or loses the most) "
             "when its FLOPs go from 4× to 8× the baseline's: 'width', 'depth' or 'resolution'?",
    hint="In the table of 7.3 (rows width, depth, resolution), subtract each row's 4× mean from its 8× mean. "
         "The smallest number (it may be negative) is the answer: the curve that stops paying first.",
    solution="gains = {d: mean at 8× − mean at 4×} over the three single-dimension curves (see the table "
             "above); the answer is min(gains, key=gains.get). Whether that gain is smaller than the seed "
             "spread is the next question to ask.",
    accept=_same_word,
)
def saturates_first() -> str:
    gains = _gains()
    return min(gains, key=gains.get)


def _costs_budget(width: Any) -> bool:
    width = float(width)
    if not 1 <= width <= 10:
        return False
    config = B0_28PX.scaled(width=B0_28PX.width * width)
    ratio = count_macs(config, num_classes=10, in_chans=1) / count_macs(B0_28PX, num_classes=10, in_chans=1)
    return abs(ratio / BUDGET - 1) <= 0.05


@exercise(
    "study.width_for_budget",
    question=f"Give a width multiplier (relative to the baseline: 1 = B0_28PX itself) whose network costs "
             f"{BUDGET:g}× the baseline's FLOPs within ±5 %, after channel rounding.",
    hint="The tables of 7.2 print absolute widths (the baseline's is 0.25): divide by 0.25 for a multiplier. "
         "FLOPs grow about like w² in wide layers, but here the narrowest layers are held at the 8-channel "
         "minimum and do not grow at first, so the answer is well above √3 ≈ 1.73. Try values with "
         "count_macs(B0_28PX.scaled(width=B0_28PX.width * w), num_classes=10, in_chans=1) / "
         "count_macs(B0_28PX, num_classes=10, in_chans=1).",
    solution="match_budget(B0_28PX, 3, 'width', num_classes=10, in_chans=1).t finds one by bisection; any "
             "width whose rounded network lands within ±5 % of 3× is right.",
    accept=_costs_budget,
)
def width_for_budget() -> float:
    return match_budget(B0_28PX, BUDGET, "width", num_classes=10, in_chans=1).t
