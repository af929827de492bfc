"""Shared fixtures. Peers (timm, torchvision) are built with random weights and a fixed seed;
their BatchNorm statistics are randomised too, so that a mix-up of two BN layers (same
shape, different role) cannot hide behind identical default statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def randomize_bn(model: nn.Module, seed: int = 0, shift: float = 0.1, min_var: float = 0.5) -> nn.Module:
    """Running means and biases ~ N(0, shift²); variances uniform in [min_var, min_var + 1.5]."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * shift)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + min_var)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * shift)
    return model


def assert_check_messages(key: str, capsys) -> None:
    """`exercises.check` says right for the answer, wrong + hint otherwise, and not answered for `...`."""
    from effnet_lab.exercises import check, get

    ex = get(key)
    right = ex.answer()
    check(key, right)
    assert "✔ right" in capsys.readouterr().out

    check(key, right * 1.5 + 1)
    out = capsys.readouterr().out
    assert "✘ not quite" in out and ex.hint in out

    check(key, ...)
    assert "not answered yet" in capsys.readouterr().out


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture
def small_input() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(123))
