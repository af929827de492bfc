"""Networks of equal cost: scale a baseline along one dimension, or all three, to a FLOPs budget.

The paper's Figure 8 and Table 3 compare compound scaling with width-, depth- and
resolution-only scaling *at the same FLOPs*. Multipliers do not give equal FLOPs by
themselves: channels round to multiples of 8, repeats round up, and pixels are whole numbers.
So `match_budget` searches the multiplier (or φ for compound scaling) whose network, after
all that rounding, costs `budget ×` the baseline's multiply-adds as counted by `paper.cost`,
and refuses when no network along that direction lands within the tolerance.

Multipliers here are relative to the baseline: width 2 doubles its channel multiplier,
resolution 1.5 makes a 16-px baseline 24 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .architecture import EfficientNetConfig
from .cost import count_macs
from .scaling import ALPHA, BETA, GAMMA

DIRECTIONS = ("width", "depth", "resolution", "compound")
TOLERANCE = 0.05


class BudgetError(ValueError):
    """No network along the requested direction costs the budget within the tolerance."""


@dataclass(frozen=True)
class Scaling:
    """Multipliers relative to a baseline (1, 1, 1 = the baseline itself)."""

    width: float = 1.0
    depth: float = 1.0
    resolution: float = 1.0

    def apply(self, base: EfficientNetConfig) -> EfficientNetConfig:
        return base.scaled(width=base.width * self.width, depth=base.depth * self.depth,
                           resolution=max(1, round(base.resolution * self.resolution)))

    @staticmethod
    def compound(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> Scaling:
        """The paper's rule: depth α^φ, width β^φ, resolution γ^φ."""
        return Scaling(width=beta**phi, depth=alpha**phi, resolution=gamma**phi)


@dataclass(frozen=True)
class Match:
    """A network found for a budget: its multipliers, its config and what it really costs."""

    direction: str
    budget: float  # wanted: this many times the baseline's MACs
    t: float  # the multiplier searched (φ for compound scaling)
    scaling: Scaling
    config: EfficientNetConfig
    macs: int
    base_macs: int

    @property
    def ratio(self) -> float:
        """Achieved MACs / baseline MACs."""
        return self.macs / self.base_macs

    @property
    def error(self) -> float:
        """Relative miss: ratio / budget − 1."""
        return self.ratio / self.budget - 1


def scaling_along(direction: str, t: float, coefficients: tuple[float, float, float] = (ALPHA, BETA, GAMMA)) -> Scaling:
    """The multipliers at position `t` along one direction (φ = t for "compound")."""
    if direction == "width":
        return Scaling(width=t)
    if direction == "depth":
        return Scaling(depth=t)
    if direction == "resolution":
        return Scaling(resolution=t)
    if direction == "compound":
        return Scaling.compound(t, *coefficients)
    raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")


def match_budget(base: EfficientNetConfig, budget: float, direction: str, *,
                 coefficients: tuple[float, float, float] = (ALPHA, BETA, GAMMA), tolerance: float = TOLERANCE,
                 num_classes: int = 1000, in_chans: int = 3) -> Match:
    """The network along `direction` whose exact MACs are closest to `budget ×` the baseline's.

    MACs grow monotonically (in steps) along every direction, so a bisection on the multiplier
    finds the last network under the budget and the first one over it; the closer of the two
    wins. Raises `BudgetError` when even that one misses by more than `tolerance`.
    """
    scaling_along(direction, 1.0, coefficients)  # validates the direction
    if not (isinstance(budget, int | float) and budget >= 1 and math.isfinite(budget)):
        raise ValueError(f"budget must be a number ≥ 1 (times the baseline's FLOPs), not {budget!r}")
    alpha, beta, gamma = coefficients
    if direction == "compound" and alpha * beta**2 * gamma**2 <= 1:
        raise ValueError(f"α·β²·γ² must exceed 1 for compound scaling to grow, not {alpha * beta**2 * gamma**2:.3f}")

    def cost(scaling: Scaling) -> int:
        return count_macs(scaling.apply(base), num_classes=num_classes, in_chans=in_chans)

    def macs_at(t: float) -> int:
        return cost(scaling_along(direction, t, coefficients))

    base_macs = count_macs(base, num_classes=num_classes, in_chans=in_chans)
    target = budget * base_macs
    zero = 0.0 if direction == "compound" else 1.0  # φ = 0, or multiplier 1: the baseline
    lo, hi = zero, zero + 1.0
    while macs_at(hi) < target:  # grow the bracket
        lo, hi = hi, zero + 2 * (hi - zero)
        if hi - zero > 1e4:
            raise BudgetError(f"{direction} scaling never reaches {budget}× the baseline's FLOPs")
    for _ in range(60):  # macs_at(lo) < target ≤ macs_at(hi)
        mid = (lo + hi) / 2
        if macs_at(mid) < target:
            lo = mid
        else:
            hi = mid

    def closest(options: list[tuple[float, Scaling]]) -> tuple[float, Scaling]:
        return min(options, key=lambda c: abs(math.log(cost(c[1]) / target)))

    candidates = [(t, scaling_along(direction, t, coefficients)) for t in (lo, hi)]
    t, scaling = closest(candidates)
    if direction == "compound" and abs(cost(scaling) / target - 1) > tolerance:
        # Width, depth and pixels round at once, so the rule's networks can jump past a budget
        # (B0_28PX: 6.95× then 9.27× around 8×). Trimming the resolution of the two neighbours by
        # a few pixels fills the gap; `Match.scaling.resolution` records what was really used.
        candidates += [(t, Scaling(s.width, s.depth, (round(base.resolution * s.resolution) + dr) / base.resolution))
                       for t, s in candidates[:2] for dr in (-3, -2, -1, 1, 2, 3)]
        t, scaling = closest(candidates)
    found = Match(direction, float(budget), t, scaling, scaling.apply(base), cost(scaling), base_macs)
    if abs(found.error) > tolerance:
        below, above = macs_at(lo) / base_macs, macs_at(hi) / base_macs
        raise BudgetError(f"{direction} scaling cannot cost {budget}× the baseline within ±{tolerance:.0%}: "
                          f"the nearest networks cost {below:.2f}× and {above:.2f}× (rounding of channels, "
                          f"repeats or pixels)")
    return found
