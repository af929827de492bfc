"""The Fused-MBConv study (V2 paper, Table 3): the variants it builds and what it measures."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from effnet_lab.lab.measure import count_flops
from effnet_lab.lab.studies.fused import equal_flops_fused, main, saved_activation_bytes, variants, with_fused_stages
from effnet_lab.model.blocks import FusedMBConv, MBConv
from effnet_lab.model.network import EfficientNet
from effnet_lab.paper.architecture import B0_STAGES, EfficientNetConfig
from effnet_lab.paper.cost import count_cost


def test_only_the_block_kind_changes():
    base = EfficientNetConfig(B0_STAGES)
    fused = with_fused_stages(base, (0, 1, 2))
    for i, (a, b) in enumerate(zip(base.stages, fused.stages, strict=True)):
        assert (a.kernel, a.stride, a.expand, a.channels, a.repeats, a.se) == (b.kernel, b.stride, b.expand,
                                                                                 b.channels, b.repeats, b.se)
        assert b.block == ("fused" if i < 3 else "mbconv")
    with torch.device("meta"):
        model = EfficientNet(fused)
    kinds = [type(stage[0]) for stage in model.stages]
    assert kinds == [FusedMBConv] * 3 + [MBConv] * 4
    assert count_cost(fused).params == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="out of range"):
        with_fused_stages(base, (7,))


def test_fused_early_stages_cost_more_flops_than_they_add_parameters():
    """The paper's point: early stages have few channels but large maps, so fusing them adds many
    FLOPs (the dense k×k conv runs at high resolution) and few parameters; fusing the late stages
    adds most parameters."""
    costs = {n: count_cost(c) for n, c in variants(EfficientNetConfig(B0_STAGES)).items()}
    base, early, every = costs["MBConv everywhere"], costs["Fused stages 2-4"], costs["Fused everywhere"]
    assert early.macs / base.macs > 1.5 and early.params / base.params < 1.1
    assert every.params / base.params > 3


@pytest.mark.parametrize("width, depth, size", [(1.0, 1.0, 224), (0.25, 0.25, 32)])
def test_equal_flops_variant_is_within_five_percent_by_torchs_count(width, depth, size):
    base = EfficientNetConfig(B0_STAGES, width=width, depth=depth, resolution=size)
    matched = equal_flops_fused(base, (0, 1, 2))
    for i, s in enumerate(matched.stages):
        if i < 3:  # V2's fused blocks: 3×3, no SE
            assert (s.block, s.kernel, s.se) == ("fused", 3, 0.0)
        else:
            assert s == base.stages[i]
    x = torch.zeros(1, 3, size, size)
    flops = [count_flops(EfficientNet(c).eval(), x) for c in (base, matched)]
    assert abs(flops[1] / flops[0] - 1) <= 0.05
    with pytest.raises(ValueError, match="no expansion ratio"):
        equal_flops_fused(base, (0, 1, 2), tolerance=0.05, expansions=(6,))


def test_saved_activations_are_what_autograd_keeps():
    # nn.Linear saves its input and its weight for backward: the weight is not an activation
    linear = nn.Linear(64, 32)
    x = torch.randn(5, 64)
    assert saved_activation_bytes(linear, x) == 5 * 64 * 4
    # gradient checkpointing keeps only each stage's input: far less
    torch.manual_seed(0)
    model = EfficientNet(EfficientNetConfig(B0_STAGES, width=0.5, depth=0.5))
    x = torch.randn(2, 3, 64, 64)
    full = saved_activation_bytes(model, x)
    model.set_grad_checkpointing(True)
    assert saved_activation_bytes(model, x) < full / 2
    model.set_grad_checkpointing(False)
    # twice the batch, twice the memory (BatchNorm's per-channel statistics are the small constant part)
    assert saved_activation_bytes(model, torch.randn(4, 3, 64, 64)) == pytest.approx(2 * full, rel=0.02)


def test_command_line_writes_results_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "fused.json"
    assert main(["--size", "32", "--batch", "2", "--rounds", "1", "--width", "0.25", "--depth", "0.25",
                 "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [r["name"] for r in record["rows"]] == ["MBConv everywhere", "Fused stages 2-4", "Fused 2-4, equal FLOPs",
                                                   "Fused everywhere"]
    assert record["command"].startswith("python -m effnet_lab.lab.studies.fused") and record["hardware"]
    assert "Fused stages 2-4" in capsys.readouterr().out
    assert main(["--size", "32", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
