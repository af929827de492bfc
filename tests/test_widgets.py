"""The scaling explorer without a browser: what it displays, how its sliders interact,
and that updating it prints nothing (nbval would see printed text as cell output)."""

from __future__ import annotations

import re
import statistics
import time
import xml.etree.ElementTree as ET

import pytest
from conftest import meta_macs, scaled_b0, scaled_b0_params, torchvision_macs

from effnet_lab.lab.widgets import ScalingExplorer, render_report, scaling_explorer, scaling_report
from effnet_lab.paper.architecture import B0_STAGES, EfficientNetConfig, total_blocks
from effnet_lab.paper.scaling import RELEASED, compound_multipliers


def built_macs(width: float, depth: float, resolution: int) -> int:
    return meta_macs(scaled_b0(width, depth), resolution)


def shown(w) -> str:
    """The raw number in an HTML widget's `<span class="effnet-value" data-value=...>`."""
    m = re.search(r'class="effnet-value" data-value="([^"]+)"', w.value)
    assert m, w.value
    return m.group(1)


@pytest.fixture(scope="module")
def explorer() -> ScalingExplorer:
    return scaling_explorer()


def test_starts_at_b0(explorer):
    assert explorer.mode == "phi" and explorer.phi.value == 0.0
    assert int(shown(explorer.params_html)) == 5_288_548
    assert int(shown(explorer.flops_html)) == torchvision_macs("efficientnet_b0", 224)
    assert int(shown(explorer.resolution_html)) == 224


@pytest.mark.parametrize("phi", [-2.0, 1.0, 2.5, 4.3, 8.0])
def test_phi_slider_follows_the_pure_rule_and_shows_exact_params(explorer, phi):
    explorer.phi.value = phi  # as a user's drag would: through the observer
    m = compound_multipliers(phi)
    assert (explorer.width.value, explorer.depth.value, explorer.resolution.value) == (m.width, m.depth, m.resolution)
    assert explorer.mode == "phi" and explorer.preset.value == "phi"
    assert int(shown(explorer.params_html)) == scaled_b0_params(m.width, m.depth)
    assert int(shown(explorer.flops_html)) == built_macs(m.width, m.depth, m.resolution)
    assert 'data-value="phi"' in explorer.mode_html.value


@pytest.mark.parametrize("key", ["b0", "b3", "b7"])
def test_presets_jump_to_released_models(explorer, key):
    explorer.preset.value = key
    m = RELEASED[key]
    assert (explorer.width.value, explorer.depth.value, explorer.resolution.value) == (m.width, m.depth, m.resolution)
    assert explorer.mode == key
    assert int(shown(explorer.params_html)) == scaled_b0_params(m.width, m.depth)
    explorer.preset.value = "phi"


def test_moving_one_slider_detaches_from_phi_and_phi_reattaches(explorer):
    explorer.phi.value = 2.0
    explorer.width.value = 1.65
    assert explorer.mode == "custom" and explorer.preset.value == "custom"
    assert explorer.depth.value == compound_multipliers(2.0).depth  # the others stay put
    assert int(shown(explorer.params_html)) == scaled_b0_params(1.65, explorer.depth.value)
    assert 'data-value="custom"' in explorer.mode_html.value
    explorer.phi.value = 3.0
    assert explorer.mode == "phi" and explorer.width.value == compound_multipliers(3.0).width
    explorer.resolution.value = 412
    assert explorer.mode == "custom" and int(shown(explorer.resolution_html)) == 412
    explorer.preset.value = "phi"  # the dropdown re-attaches too, at the current φ
    assert explorer.mode == "phi" and explorer.resolution.value == compound_multipliers(3.0).resolution


def test_a_snapped_echo_from_the_browser_does_not_detach(explorer):
    explorer.phi.value = 1.3
    explorer.width.value = round(explorer.width.value / 0.05) * 0.05  # what a slider snapped to its step sends
    assert explorer.mode == "phi"


def test_a_stale_echo_is_undone_so_the_sliders_show_the_network(explorer):
    """φ = 3 then B4 back to back (as notebook 03 does): the browser may echo φ = 3's width and depth,
    snapped to the step, after B4's. Ignoring them is not enough: the sliders would read 1.35 / 1.75
    beside B4's counts. The explorer puts them back."""
    explorer.phi.value = 3.0
    explorer.preset.value = "b4"
    explorer.width.value = round(compound_multipliers(3.0).width / 0.05) * 0.05  # 1.35, φ = 3's, snapped
    explorer.depth.value = round(compound_multipliers(3.0).depth / 0.05) * 0.05  # 1.75
    b4 = RELEASED["b4"]
    assert explorer.mode == "b4" and (explorer.width.value, explorer.depth.value) == (b4.width, b4.depth)
    assert int(shown(explorer.params_html)) == scaled_b0_params(b4.width, b4.depth)
    explorer.preset.value = "phi"


def test_updates_print_nothing(capsys):
    e = scaling_explorer()
    for phi in (0.5, 1.0, 7.9):
        e.phi.value = phi
    e.preset.value = "b5"
    e.depth.value = 2.5
    e.resolution.value = 500
    e.preset.value = "phi"
    e.update()
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_dom_hooks():
    e = scaling_explorer()
    assert e.phi.description == "φ"
    classes = {w: w._dom_classes for w in (e.phi, e.width, e.depth, e.resolution, e.preset, e.params_html,
                                             e.flops_html, e.memory_html, e.mode_html, e.widget)}
    assert "effnet-phi-slider" in classes[e.phi] and "effnet-params" in classes[e.params_html]
    assert "effnet-explorer" in classes[e.widget] and "effnet-preset" in classes[e.preset]
    for w in (e.params_html, e.flops_html, e.memory_html, e.resolution_html):
        assert shown(w).isdigit()


def test_report_matches_built_model_and_renders_valid_svg():
    r = scaling_report(1.37, 2.2, 333)
    assert r["params"] == scaled_b0_params(1.37, 2.2)
    html = render_report(r)
    config = EfficientNetConfig(B0_STAGES, width=1.37, depth=2.2)
    diagram = ET.fromstring(html["diagram"])
    rects = [el for el in diagram.iter() if el.tag.endswith("rect")]
    assert len(rects) == total_blocks(config) + 2  # every block, plus stem and head
    curve = ET.fromstring(html["curve"])
    current = [el for el in curve.iter() if el.get("class") == "effnet-current"]
    assert len(current) == 1 and int(current[0].get("data-params")) == r["params"]
    assert html["table"].count("<tr data-stage=") == 7 + 3  # stem, 7 stages, head, classifier
    assert f"{r['params']:,}" in html["params"]


def test_display_text_is_short_and_deterministic():
    e = scaling_explorer(phi=1.0)
    bundle = e._repr_mimebundle_()
    # φ = 1 gives B2's multipliers (width 1.1, depth 1.2) at 256 px: torchvision's B2 has that network
    gflops = torchvision_macs("efficientnet_b2", 256) / 1e9
    assert bundle["text/plain"] == repr(e) == (
        f"ScalingExplorer(mode=phi, width=1.100, depth=1.200, resolution=256: 9,109,994 params, {gflops:.3f} GFLOPs)")
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_update_is_fast():
    e = scaling_explorer()
    times = []
    for phi in [x / 2 for x in range(-4, 17)]:
        t = time.perf_counter()
        e.phi.value = phi
        times.append(time.perf_counter() - t)
    assert statistics.median(times) < 0.05, times  # budget 100 ms; typically a few ms


# ------------------------------------------------------------------------------ EfficientNetV2
def _timm_on_meta(name: str):
    import timm
    import torch

    with torch.device("meta"):
        return timm.create_model(name)


def test_v2_family_starts_at_v2_b0_and_counts_it_exactly():
    e = scaling_explorer()
    e.family_choice.value = "v2"  # as a user's choice would: through the observer
    peer = _timm_on_meta("tf_efficientnetv2_b0")
    assert e.family == "v2" and e.mode == "phi"
    assert int(shown(e.params_html)) == sum(p.numel() for p in peer.parameters()) == 7_139_704
    assert int(shown(e.flops_html)) == meta_macs(peer, 224)  # TF "same" padding: the same MACs at 224
    assert [v for _, v in e.preset.options] == ["phi", "b0", "b1", "b2", "b3", "s", "m", "l", "custom"]
    assert "V2-B0's table" in e.mode_html.value


@pytest.mark.parametrize("key, name", [("b3", "tf_efficientnetv2_b3"), ("s", "tf_efficientnetv2_s")])
def test_v2_presets_are_timms_networks(key, name):
    e = scaling_explorer()
    e.set_family("v2")
    e.preset.value = key
    peer = _timm_on_meta(name)
    assert int(shown(e.params_html)) == sum(p.numel() for p in peer.parameters())
    assert int(shown(e.resolution_html)) == {"b3": 300, "s": 384}[key]
    assert e.mode == key and f'data-value="{key}"' in e.mode_html.value


def test_v2_s_m_l_cost_what_torchvision_publishes():
    from torchvision.models import get_model_weights

    e = scaling_explorer()
    e.set_family("v2")
    for key in ("s", "m", "l"):
        e.set_preset(key)
        meta = get_model_weights(f"efficientnet_v2_{key}").IMAGENET1K_V1.meta
        assert int(shown(e.params_html)) == meta["num_params"]
        assert round(int(shown(e.flops_html)) / 1e9, 3) == pytest.approx(meta["_ops"], abs=0.001)


def test_v2_phi_caps_the_resolution_at_480_and_v1_comes_back():
    e = scaling_explorer()
    e.set_family("v2")
    e.phi.value = 8.0  # 224·1.15^8 = 685 px in V1
    assert e.resolution.value == 480 and "capped at 480 px" in e.mode_html.value
    e.family_choice.value = "v1"
    assert e.family == "v1" and e.resolution.value == compound_multipliers(8.0).resolution
    m = compound_multipliers(8.0)
    assert int(shown(e.params_html)) == scaled_b0_params(m.width, m.depth)
    e.phi.value = 0.0
    assert int(shown(e.params_html)) == 5_288_548 and "family=v2" not in repr(e)


def test_v2_diagram_marks_fused_blocks_and_fits_a_deepened_v2_l():
    e = scaling_explorer()
    e.set_family("v2")
    e.set_preset("l")
    e.depth.value = DEPTH_MAX = 4.5  # 79 blocks × 4.5
    svg = ET.fromstring(e.diagram.value)
    width = float(svg.get("viewBox").split()[2])
    rects = [el for el in svg.iter() if el.tag.endswith("rect")]
    assert len(rects) == total_blocks(e.report["config"]) + 2 and e.report["config"].depth == DEPTH_MAX
    assert max(float(r.get("x")) + float(r.get("width")) for r in rects) <= width
    fused = [r for r in rects if r.get("fill") == "#54a24b"]
    assert len(fused) == sum(s["repeats"] for s in e.report["stages"] if s["block"].startswith("FusedMBConv")) > 0
