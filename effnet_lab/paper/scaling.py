"""Compound scaling: how EfficientNet-B0 grows into B1…B7.

Pure Python on purpose (no torch): a slider in notebook 03 calls these on every move and
must answer in microseconds.

The paper scales three things with one coefficient φ:

    depth      d = α^φ      (more blocks per stage)
    width      w = β^φ      (more channels per layer)
    resolution r = γ^φ      (bigger input images)

with α·β²·γ² ≈ 2, so that FLOPs (∝ d·w²·r²) grow by about 2^φ. The grid search at φ = 1
found α = 1.2, β = 1.1, γ = 1.15.

The models Google released do *not* follow α^φ exactly: their multipliers were rounded
by hand. Both are here (`compound_multipliers` and `RELEASED`) so that the difference can
be shown rather than hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 1.2  # depth
BETA = 1.1  # width
GAMMA = 1.15  # resolution
BASE_RESOLUTION = 224


@dataclass(frozen=True)
class Multipliers:
    """How much to grow B0: channel (width) and repeat (depth) multipliers, input size."""

    width: float
    depth: float
    resolution: int
    dropout: float = 0.2


# The multipliers of the released checkpoints (width, depth, resolution, dropout).
RELEASED: dict[str, Multipliers] = {
    "b0": Multipliers(1.0, 1.0, 224, 0.2),
    "b1": Multipliers(1.0, 1.1, 240, 0.2),
    "b2": Multipliers(1.1, 1.2, 260, 0.3),
    "b3": Multipliers(1.2, 1.4, 300, 0.3),
    "b4": Multipliers(1.4, 1.8, 380, 0.4),
    "b5": Multipliers(1.6, 2.2, 456, 0.4),
    "b6": Multipliers(1.8, 2.6, 528, 0.5),
    "b7": Multipliers(2.0, 3.1, 600, 0.5),
}

# EfficientNet-Lite: the same B0 table with ReLU6 and no SE, scaled by these.
RELEASED_LITE: dict[str, Multipliers] = {
    "lite0": Multipliers(1.0, 1.0, 224, 0.2),
    "lite1": Multipliers(1.0, 1.1, 240, 0.2),
    "lite2": Multipliers(1.1, 1.2, 260, 0.3),
    "lite3": Multipliers(1.2, 1.4, 300, 0.3),
    "lite4": Multipliers(1.4, 1.8, 380, 0.3),
}


# EfficientNetV2-B0 … B3 grow V2-B0's table with V1's B0–B3 multipliers, at the same sizes; V2's
# larger models are tables of their own (S, M, L), and V2 never goes above 480 px.
RELEASED_V2: dict[str, Multipliers] = {k: RELEASED[k] for k in ("b0", "b1", "b2", "b3")}
V2_MAX_RESOLUTION = 480


def flops_constraint(alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> float:
    """α·β²·γ²: the factor by which FLOPs grow per unit of φ (the paper wants ≈ 2)."""
    return alpha * beta**2 * gamma**2


def compound_multipliers(
    phi: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    base_resolution: int = BASE_RESOLUTION,
) -> Multipliers:
    """The pure rule: depth α^φ, width β^φ, resolution γ^φ·224 (rounded to a multiple of 8)."""
    resolution = round_to_multiple(base_resolution * gamma**phi, 8)
    return Multipliers(width=beta**phi, depth=alpha**phi, resolution=resolution)


def implied_phi(m: Multipliers, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA,
                base_resolution: int = BASE_RESOLUTION) -> dict[str, float]:
    """The φ that each released multiplier would correspond to under the pure rule.

    If the released models followed α^φ, β^φ, γ^φ exactly, the three numbers would agree.
    """
    return {
        "depth": math.log(m.depth) / math.log(alpha),
        "width": math.log(m.width) / math.log(beta),
        "resolution": math.log(m.resolution / base_resolution) / math.log(gamma),
    }


def round_to_multiple(value: float, multiple: int) -> int:
    return int(round(value / multiple)) * multiple


def round_channels(channels: float, width: float = 1.0, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Scale a channel count by `width` and round to a multiple of `divisor`.

    Hardware likes multiples of 8. Rounding to the nearest multiple could shrink a layer a
    lot when it is small, so never go below `round_limit` (90 %) of the target: add one more
    `divisor` then. (EfficientNetV2-B0..B3 round without that floor: round_limit 0.)
    """
    target = channels * width
    rounded = max(divisor, int(target + divisor / 2) // divisor * divisor)
    if rounded < round_limit * target:
        rounded += divisor
    return rounded


def round_repeats(repeats: int, depth: float = 1.0) -> int:
    """Scale the number of blocks in a stage; ceil, so any depth > 1 adds at least one."""
    return int(math.ceil(repeats * depth))
