"""Notebook 01's exercises: each registered answer agrees with an independent computation,
and `check` says right for it and gives the hint for a wrong value."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import assert_check_messages
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from effnet_lab.lab.exercises import get


def _params_from_plain_torch() -> int:
    # stages.3.0 of B0 rebuilt from bare torch layers: 40 → 240 → 240 (3×3 dw, s2) → SE(10) → 80
    layers = [nn.Conv2d(40, 240, 1, bias=False), nn.BatchNorm2d(240),
              nn.Conv2d(240, 240, 3, 2, 1, groups=240, bias=False), nn.BatchNorm2d(240),
              nn.Conv2d(240, 10, 1), nn.Conv2d(10, 240, 1),
              nn.Conv2d(240, 80, 1, bias=False), nn.BatchNorm2d(80)]
    return sum(p.numel() for layer in layers for p in layer.parameters())


def _flops_saving_from_functional() -> float:
    x = torch.zeros(1, 32, 56, 56)
    with FlopCounterMode(display=False) as regular:
        F.conv2d(x, torch.zeros(64, 32, 3, 3), padding=1)
    with FlopCounterMode(display=False) as separable:
        F.conv2d(F.conv2d(x, torch.zeros(32, 1, 3, 3), padding=1, groups=32), torch.zeros(64, 32, 1, 1))
    return regular.get_total_flops() / separable.get_total_flops()


def _torchvision_b0_blocks():
    model = torchvision.models.efficientnet_b0(stochastic_depth_prob=0.2)
    return [block for stage in model.features[1:8] for block in stage]


INDEPENDENT = {
    "mbconv.params": lambda: (_params_from_plain_torch(), 37130),
    "mbconv.flops_saving": lambda: (_flops_saving_from_functional(), 9 * 64 / (9 + 64)),
    "mbconv.skips": lambda: (sum(b.use_res_connect for b in _torchvision_b0_blocks()), 9),
    "mbconv.drop_path": lambda: (_torchvision_b0_blocks()[13].stochastic_depth.p, 0.2 * 13 / 16),
}


@pytest.mark.parametrize("key", sorted(INDEPENDENT))
def test_answer_matches_an_independent_computation(key):
    answer = get(key).answer()
    for reference in INDEPENDENT[key]():
        assert answer == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("key", sorted(INDEPENDENT))
def test_check_says_right_and_wrong(key, capsys):
    assert_check_messages(key, capsys)


def test_rounded_flops_saving_is_accepted():
    assert get("mbconv.flops_saving").is_right(7.89)
    assert not get("mbconv.flops_saving").is_right(9.0)  # k², the limit for many output channels
