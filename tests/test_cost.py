"""effnet_lab.paper.cost against the built model, torch's FLOP counter and torchvision's metadata."""

from __future__ import annotations

import math
import time

import pytest
import torch
from conftest import build_on_meta, no_init, torchvision_macs
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import effnet_lab
from effnet_lab.model.registry import get_entry
from effnet_lab.paper import cost
from effnet_lab.paper.architecture import B0_STAGES, EDGE_STAGES, LITE_STAGES, EfficientNetConfig
from effnet_lab.paper.scaling import RELEASED


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


FAMILY = [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_lite{i}" for i in range(5)] + \
         ["efficientnet_es", "efficientnet_em", "efficientnet_el", "tf_efficientnet_b3"] + \
         ["efficientnetv2_rw_t", "efficientnetv2_rw_s"] + [f"tf_efficientnetv2_{k}" for k in ("b0", "b3", "s")]

ARBITRARY = [
    EfficientNetConfig(B0_STAGES, width=0.5, depth=0.5, resolution=128),
    EfficientNetConfig(B0_STAGES, width=0.75, depth=1.3, resolution=199),
    EfficientNetConfig(B0_STAGES, width=1.37, depth=2.2, resolution=333),
    EfficientNetConfig(B0_STAGES, width=2.5, depth=4.1, resolution=640),
    EfficientNetConfig(LITE_STAGES, width=1.3, depth=1.6, act="relu6", fixed_stem_head=True,
                       fixed_first_last_depth=True),
    EfficientNetConfig(EDGE_STAGES, width=0.8, depth=1.7, resolution=250, act="relu"),
]


@pytest.mark.parametrize("name", FAMILY)
def test_params_exact_for_registered_models(name):
    with no_init(), torch.device("meta"):
        model = effnet_lab.create_model(name)  # the registry path, as users build it
    assert cost.count_params(model.config) == n_params(model)


@pytest.mark.parametrize("config", ARBITRARY, ids=lambda c: f"{c.stages[0].block}-w{c.width}-d{c.depth}")
def test_params_exact_for_arbitrary_settings(config):
    assert cost.count_params(config) == n_params(build_on_meta(config))


def test_params_exact_for_other_heads_and_inputs():
    config = ARBITRARY[1]
    built = build_on_meta(config, num_classes=10, in_chans=1)
    assert cost.count_params(config, num_classes=10, in_chans=1) == n_params(built)
    assert cost.count_params(config, num_classes=0) == n_params(build_on_meta(config, num_classes=0))


def test_reference_param_counts():
    """REFERENCE.md: timm = torchvision parameter counts."""
    expected = {"b0": 5_288_548, "b1": 7_794_184, "b2": 9_109_994, "b3": 12_233_232, "b4": 19_341_616,
                "b5": 30_389_784, "b6": 43_040_704, "b7": 66_347_960, "es": 5_438_392, "em": 6_899_496,
                "lite0": 4_652_008}
    for key, n in expected.items():
        assert cost.count_params(get_entry(f"efficientnet_{key}").config) == n


def _part(name: str) -> str:
    """Module name → the row of the cost table it belongs to."""
    top = name.split(".")
    if top[0] == "stages":
        return f"stage {int(top[1]) + 2}"  # Table 1 counts the stem as stage 1
    return {"stem": "stem", "head": "head", "classifier": "classifier"}[top[0]]


# MACs: conv + linear only, which is exactly what FlopCounterMode counts (as 2 FLOPs per MAC).
# Odd sizes and TF "same" padding check the output-size arithmetic.
FLOP_CASES = [("efficientnet_b0", 224), ("efficientnet_es", 224), ("efficientnet_lite0", 224),
              ("tf_efficientnet_b0", 225), ("efficientnet_el", 193),
              ("tf_efficientnetv2_b3", 227), ("efficientnetv2_rw_s", 160), ("efficientnetv2_rw_t", 193)]


@pytest.mark.parametrize("name,res", FLOP_CASES)
def test_macs_and_activations_exact(name, res):
    config = get_entry(name).config
    model = build_on_meta(config).eval()
    per_part: dict[str, list[int]] = {}

    def hook(module, inputs, output):
        # MACs from the real layer shapes: output elements × (inputs per output element).
        w = module.weight
        macs = output.numel() * (w[0].numel() if isinstance(module, nn.Conv2d) else w.shape[1])
        row = per_part.setdefault(_part(module._name), [0, 0])
        row[0] += macs
        row[1] += output.numel()

    for mname, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            m._name = mname
            m.register_forward_hook(hook)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, 3, res, res, device="meta"))

    report = cost.count_cost(config, res)
    assert 2 * report.macs == counter.get_total_flops()
    # The claim in the docstring: the counter sees convolutions and matmuls, nothing element-wise.
    assert {str(op) for op in counter.get_flop_counts()["Global"]} <= {"aten.convolution", "aten.addmm"}
    for row in report.stages:
        assert [row.macs, row.activations] == per_part[row.name], row.name
    assert report.activations == sum(a for _, a in per_part.values())
    assert report.activation_mb == pytest.approx(report.activations * 4 / 1e6)
    params = {r.name: r.params for r in report.stages}
    assert params["stem"] == n_params(model.stem) and params["head"] == n_params(model.head)
    assert params["classifier"] == n_params(model.classifier)
    for i, stage in enumerate(model.stages):
        assert params[f"stage {i + 2}"] == n_params(stage)


def test_macs_match_torchvision_published_gflops():
    """torchvision's `_ops` (GFLOPS, multiply-adds) at its evaluation crop, to its 3 decimals."""
    from torchvision.models import get_model_weights

    published = {"b0": 0.386, "b1": 0.687, "b2": 1.088, "b3": 1.827, "b4": 4.394, "b5": 10.266,
                 "b6": 19.068, "b7": 37.746}
    for key, gflops in published.items():
        weights = get_model_weights(f"efficientnet_{key}").IMAGENET1K_V1
        assert weights.meta["_ops"] == gflops
        crop = weights.transforms().crop_size[0]  # b2 is evaluated at 288, not 260
        ours = cost.count_cost(get_entry(f"efficientnet_{key}").config, crop).gmacs
        assert ours == pytest.approx(gflops, abs=5e-4), key


def test_close_to_the_papers_table_2():
    """The paper rounds (and its B4–B7 FLOPs were measured slightly differently): within 5%."""
    paper = {"b0": (5.3, 0.39), "b1": (7.8, 0.70), "b2": (9.2, 1.0), "b3": (12, 1.8), "b4": (19, 4.2),
             "b5": (30, 9.9), "b6": (43, 19), "b7": (66, 37)}
    for key, (mparams, gflops) in paper.items():
        report = cost.count_cost(get_entry(f"efficientnet_{key}").config)
        assert report.params / 1e6 == pytest.approx(mparams, rel=0.05), key
        assert report.gmacs == pytest.approx(gflops, rel=0.05), key


def test_params_do_not_depend_on_resolution():
    b0 = EfficientNetConfig()
    assert {cost.count_cost(b0, r).params for r in (32, 97, 224, 600)} == {5_288_548}


def test_fast_enough_for_a_slider():
    """Well under the 100 ms budget for anything up to B7 and beyond (about a millisecond)."""
    configs = [get_entry(f"efficientnet_b{i}").config for i in range(8)] + ARBITRARY
    cost.count_cost(configs[0])
    for config in configs:
        best = min(_timed(lambda: cost.count_cost(config)) for _ in range(5))  # noqa: B023
        assert best < 0.02, (config, best)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_scaling_exercises_answers():
    from effnet_lab.lab.exercises import get

    assert get("scaling.b3_params").answer() == 12_233_232
    assert get("scaling.flops_factor").is_right(1.92)
    # B4's 380 px from 224 · 1.15^φ (the paper's γ): φ = ln(380/224) / ln 1.15
    assert get("scaling.b4_resolution_phi").answer() == pytest.approx(math.log(380 / 224) / math.log(1.15), abs=0.01)
    assert not get("scaling.b4_resolution_phi").is_right(3.5)
    # doubling B0's input: the ratio of torch's FLOP counts on torchvision's B0 at 448 and 224 px
    ratio = torchvision_macs("efficientnet_b0", 448) / torchvision_macs("efficientnet_b0", 224)
    assert get("scaling.double_resolution").answer() == pytest.approx(ratio, rel=1e-6)
    assert not get("scaling.double_resolution").is_right(4.0)  # the classifier does not grow
    b0 = RELEASED["b0"]
    assert (b0.width, b0.depth, b0.resolution) == (1.0, 1.0, 224)
