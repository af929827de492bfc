"""Block diagrams are drawn from the block itself: its parts in forward order, each part's
parameters and multiply-adds adding up to what torch counts for the whole block, and to what
torchvision's own blocks of the same shape have."""

from __future__ import annotations

from functools import partial

import matplotlib
import pytest
import torch
from torch import nn
from torchvision.models import efficientnet as tv

from effnet_lab.lab.diagrams import block_parts, draw_block
from effnet_lab.lab.measure import count_flops, count_params
from effnet_lab.model.blocks import FusedMBConv, MBConv

matplotlib.use("Agg")

_BN = partial(nn.BatchNorm2d, eps=1e-3)


def _torchvision_cost(block: nn.Module, in_ch: int, res: int) -> tuple[int, int]:
    block.eval()
    return count_params(block), count_flops(block, torch.zeros(1, in_ch, res, res)) // 2


@pytest.mark.parametrize("in_ch, out_ch, kernel, stride, expand, res", [
    (48, 48, 3, 1, 4, 28), (24, 40, 5, 2, 6, 32), (16, 16, 3, 1, 1, 20),
])
def test_mbconv_parts_add_up_to_torchvisions_block(in_ch, out_ch, kernel, stride, expand, res):
    ours = MBConv(in_ch, out_ch, kernel, stride, expand)
    parts = block_parts(ours, in_ch, res)
    expected = ["depthwise", "se", "project"] if expand == 1 else ["expand", "depthwise", "se", "project"]
    assert [p.name for p in parts] == expected
    assert [p.kind for p in parts][-3:] == ["depthwise", "se", "pointwise"]
    assert parts[-1].act == "none (linear)"  # the linear bottleneck
    peer = tv.MBConv(tv.MBConvConfig(expand, kernel, stride, in_ch, out_ch, 1), 0.0, _BN)
    assert (sum(p.params for p in parts), sum(p.macs for p in parts)) == _torchvision_cost(peer, in_ch, res)
    out_res = (res + stride - 1) // stride
    assert parts[-1].out_shape == (out_ch, out_res, out_res)


@pytest.mark.parametrize("in_ch, out_ch, stride, expand, res", [(48, 48, 1, 4, 28), (24, 48, 2, 4, 32),
                                                                (24, 24, 1, 1, 40)])
def test_fused_parts_add_up_to_torchvisions_block(in_ch, out_ch, stride, expand, res):
    ours = FusedMBConv(in_ch, out_ch, 3, stride, expand, act="silu")
    parts = block_parts(ours, in_ch, res)
    assert [p.kind for p in parts] == (["full"] if expand == 1 else ["full", "pointwise"])
    assert parts[0].act == "SiLU"
    peer = tv.FusedMBConv(tv.FusedMBConvConfig(expand, 3, stride, in_ch, out_ch, 1), 0.0, _BN)
    assert (sum(p.params for p in parts), sum(p.macs for p in parts)) == _torchvision_cost(peer, in_ch, res)


def test_whole_block_flops_match_and_mode_is_restored():
    block = MBConv(32, 32, 3, 1, 6).train()
    parts = block_parts(block, 32, 16)
    assert block.training  # measured in eval mode, given back as it was
    assert sum(p.macs for p in parts) == count_flops(block.eval(), torch.zeros(1, 32, 16, 16)) // 2


def test_draw_block_labels_what_it_drew():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    draw_block(MBConv(48, 48, 3, 1, 4), 48, 28, ax, title="MBConv4")
    texts = [t.get_text() for t in ax.texts]
    assert "input 48 × 28 × 28" in texts and "(+)  output 48 × 28 × 28" in texts  # stride 1, equal channels: skip
    assert any("3×3 depthwise conv   192 → 192" in t for t in texts)
    assert ax.get_title().startswith("MBConv4\n")
    ax.clear()
    draw_block(FusedMBConv(24, 48, 3, 2, 1), 24, 32, ax)
    texts = [t.get_text() for t in ax.texts]
    assert "output 48 × 16 × 16" in texts and "skip" not in texts  # stride 2: no skip
    plt.close(fig)


def test_unknown_part_is_refused():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2d(1)

        def parts(self):
            return ("pool",)

        def forward(self, x):
            return self.pool(x)

    with pytest.raises(TypeError, match="AvgPool2d"):
        block_parts(Odd(), 3, 4)
