"""Compound scaling against the references: timm's rounding, the paper's numbers."""

from __future__ import annotations

import math

import pytest
from timm.layers import make_divisible

from effnet_lab.paper import scaling
from effnet_lab.paper.architecture import B0_STAGES, EfficientNetConfig, scaled_stages


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 3.1, 4.3])
def test_round_channels_matches_timm(width):
    for c in [8, 16, 24, 32, 40, 80, 112, 192, 320, 1280, 3, 17, 100]:
        assert scaling.round_channels(c, width) == make_divisible(c * width, 8)
        assert scaling.round_channels(c, width) >= 0.9 * c * width


def test_round_repeats_is_ceil():
    assert [scaling.round_repeats(r, 1.1) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert [scaling.round_repeats(r, 1.0) for r in (1, 2, 3, 4)] == [1, 2, 3, 4]


# The paper: α = 1.2, β = 1.1, γ = 1.15 and α·β²·γ² ≈ 2.
def test_paper_constants():
    assert (scaling.ALPHA, scaling.BETA, scaling.GAMMA) == (1.2, 1.1, 1.15)
    assert scaling.flops_constraint() == pytest.approx(1.92, abs=0.01)


# The released settings (paper / TF reference / timm's docstring), width-depth-res-dropout.
PAPER_RELEASED = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
                  "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
                  "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}


def test_released_table():
    for k, (w, d, r, p) in PAPER_RELEASED.items():
        m = scaling.RELEASED[k]
        assert (m.width, m.depth, m.resolution, m.dropout) == (w, d, r, p)


def test_pure_rule_differs_from_released():
    """The pure rule at φ = 1 gives depth 1.2, width 1.1, 256 px: not B1 (1.1, 1.0, 240)."""
    m = scaling.compound_multipliers(1)
    assert (m.depth, m.width) == (1.2, 1.1)
    assert m.resolution == 256  # 224 · 1.15 = 257.6, to a multiple of 8
    phi = scaling.implied_phi(scaling.RELEASED["b1"])
    assert phi["width"] == 0.0 and phi["depth"] == pytest.approx(math.log(1.1) / math.log(1.2))


def test_torchvision_agrees_on_stage_channels():
    """torchvision's own B-series stage settings equal our scaled Table 1."""
    from torchvision.models.efficientnet import _efficientnet_conf

    for k, m in scaling.RELEASED.items():
        settings, last = _efficientnet_conf(f"efficientnet_{k}", width_mult=m.width, depth_mult=m.depth)
        ours = scaled_stages(EfficientNetConfig(B0_STAGES, m.width, m.depth))
        assert [s.out_channels for s in ours] == [c.out_channels for c in settings]
        assert [s.repeats for s in ours] == [c.num_layers for c in settings]
        assert [s.kernel for s in ours] == [c.kernel for c in settings]
        assert [s.stride for s in ours] == [c.stride for c in settings]
