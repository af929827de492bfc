"""EfficientNetV2 against torchvision (S/M/L) and timm (the TF ports, B0-B3, rw_t, rw_s): the same
networks, parameter counts, weights, costs, data configs, feature maps and drop-path schedules.
(Logits and the round trip to timm's layout for every registered model: test_models_vs_peers.)"""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import randomize_bn

import effnet_lab
from effnet_lab.paper.cost import count_cost
from effnet_lab.weights.layouts import export_state_dict

SIZES = ["s", "m", "l"]
WEIGHTS = {"s": torchvision.models.EfficientNet_V2_S_Weights.IMAGENET1K_V1,
           "m": torchvision.models.EfficientNet_V2_M_Weights.IMAGENET1K_V1,
           "l": torchvision.models.EfficientNet_V2_L_Weights.IMAGENET1K_V1}


@pytest.mark.parametrize("size", SIZES)
def test_torchvision_weights_load_exactly_and_round_trip(size, tmp_path):
    """torchvision's V2 (random weights, randomised BatchNorm statistics) loads through
    checkpoint_path with pretrained=True (the published weights' BN eps 1e-3), computes the same
    logits, and exports back to torchvision's layout key for key."""
    torch.manual_seed(0)
    peer = randomize_bn(torchvision.models.get_model(f"efficientnet_v2_{size}")).eval()
    path = tmp_path / "tv.pth"
    torch.save(peer.state_dict(), path)
    ours = effnet_lab.create_model(f"efficientnetv2_{size}", pretrained=True, checkpoint_path=path).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in peer.parameters())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - peer(x)).abs().max().item() < 1e-4
    back = export_state_dict(ours, "torchvision")
    assert back.keys() == peer.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in peer.state_dict().items())


@pytest.mark.parametrize("size", SIZES)
def test_cost_and_data_config_equal_torchvisions_metadata(size):
    meta = WEIGHTS[size].meta
    config = effnet_lab.get_entry(f"efficientnetv2_{size}").config
    report = count_cost(config)  # at the evaluation size
    assert report.params == meta["num_params"]
    assert round(report.gmacs, 3) == pytest.approx(meta["_ops"], abs=0.001)
    tv = WEIGHTS[size].transforms()
    cfg = effnet_lab.resolve_data_config(effnet_lab.create_model(f"efficientnetv2_{size}"))
    assert cfg["input_size"] == (3, tv.crop_size[0], tv.crop_size[0]) and tv.resize_size == tv.crop_size
    assert cfg["crop_pct"] == 1.0 and cfg["interpolation"] == tv.interpolation.value
    assert cfg["mean"] == pytest.approx(tv.mean) and cfg["std"] == pytest.approx(tv.std)


def test_pretrained_offline_names_checkpoint_path(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network in tests")))
    with pytest.raises(effnet_lab.PretrainedUnavailable,
                       match=r"(?s)efficientnet_v2_s-dd5fe13b.pth.*checkpoint_path="):
        effnet_lab.create_model("efficientnetv2_s", pretrained=True)


# ------------------------------------------------------------------------------ timm's V2 family
# (logits and round trip for every registered V2 model: test_models_vs_peers; data configs too)
TIMM_V2 = {"tf_efficientnetv2_s": 21_458_488, "tf_efficientnetv2_m": 54_139_356, "tf_efficientnetv2_l": 118_515_272,
           "tf_efficientnetv2_b0": 7_139_704, "efficientnetv2_rw_t": 13_649_388, "efficientnetv2_rw_s": 23_941_296}


@pytest.mark.parametrize("name", sorted(TIMM_V2))
def test_parameter_counts_are_the_measured_ones(name):
    with torch.device("meta"):
        assert sum(p.numel() for p in effnet_lab.create_model(name).parameters()) == TIMM_V2[name]
    assert count_cost(effnet_lab.get_entry(name).config).params == TIMM_V2[name]


def test_v2_b3_channels_round_without_the_90_percent_floor():
    """timm's V2-B0..B3 round channels to the nearest multiple of 8 (round_limit 0): at width 1.2
    the first stage's 16 channels become 16 (19.2 rounded), where V1's rule would give 24."""
    import timm

    ours = effnet_lab.create_model("tf_efficientnetv2_b3")
    peer = timm.create_model("tf_efficientnetv2_b3")
    assert ours.stages[0][0].expand.conv.out_channels == peer.blocks[0][0].conv.out_channels == 16
    assert ours.stem.conv.out_channels == peer.conv_stem.out_channels == 40


def test_rw_s_first_stage_projects_and_the_official_s_does_not():
    ours_rw, ours_s = effnet_lab.create_model("efficientnetv2_rw_s"), effnet_lab.create_model("efficientnetv2_s")
    assert ours_rw.stages[0][0].parts() == ("expand", "project")  # timm's EdgeResidual with expand 1
    assert ours_s.stages[0][0].parts() == ("expand",)  # one 3×3 conv (torchvision, official code)


# (features_only and gradient checkpointing for V2: test_model_api's parametrized tests)
@pytest.mark.parametrize("name", ["efficientnetv2_s", "tf_efficientnetv2_b0", "efficientnetv2_rw_t"])
def test_v2_drop_path_schedule_matches_timm(name):
    import timm

    with_dp = effnet_lab.create_model(name, drop_path_rate=0.2)
    peer_dp = timm.create_model(name, drop_path_rate=0.2)
    theirs = [getattr(b.drop_path, "drop_prob", 0.0) for stage in peer_dp.blocks for b in stage]
    skips = [b.has_skip for stage in with_dp.stages for b in stage]
    assert len(theirs) == len(skips)
    assert [r for r, s in zip(with_dp.drop_path_rates(), skips, strict=True) if s] == pytest.approx(
        [t for t, s in zip(theirs, skips, strict=True) if s])


def test_v2_drop_path_schedule_matches_torchvision():
    tv = torchvision.models.efficientnet_v2_s(stochastic_depth_prob=0.2)
    tv_rates = [b.stochastic_depth.p for stage in tv.features[1:-1] for b in stage]
    ours = effnet_lab.create_model("efficientnetv2_s", drop_path_rate=0.2)
    assert effnet_lab.paper.architecture.drop_path_schedule(ours.config) == pytest.approx(tv_rates)


def test_tf_port_weights_fit_torchvisions_v2_s():
    """The TF port and torchvision's V2-S are the same layers (only the padding differs): its
    weights export to torchvision's layout and load there strictly, and into our
    efficientnetv2_s, where both compute the same logits."""
    torch.manual_seed(0)
    tf_port = randomize_bn(effnet_lab.create_model("tf_efficientnetv2_s")).eval()
    sd = export_state_dict(tf_port, "torchvision")
    peer = torchvision.models.efficientnet_v2_s().eval()
    peer.load_state_dict(sd)  # strict
    ours = effnet_lab.create_model("efficientnetv2_s", bn_eps=1e-3).eval()
    ours.load_state_dict(tf_port.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - peer(x)).abs().max().item() < 1e-4


def test_use_test_size_takes_the_larger_evaluation_size():
    import timm

    model = effnet_lab.create_model("tf_efficientnetv2_s")
    assert effnet_lab.resolve_data_config(model)["input_size"] == (3, 300, 300)
    ours = effnet_lab.resolve_data_config(model, use_test_size=True)
    theirs = timm.data.resolve_data_config(model=timm.create_model("tf_efficientnetv2_s"), use_test_size=True)
    assert ours["input_size"] == theirs["input_size"] == (3, 384, 384)
    assert ours["crop_pct"] == theirs["crop_pct"] == 1.0


@pytest.mark.parametrize("name, file", [("tf_efficientnetv2_s", "tf_efficientnetv2_s_21ft1k-d7dafa41.pth"),
                                        ("efficientnetv2_rw_t", "efficientnetv2_t_agc-3620981a.pth")])
def test_timm_v2_pretrained_offline_names_the_file_and_checkpoint_path(name, file, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network in tests")))
    with pytest.raises(effnet_lab.PretrainedUnavailable, match=rf"(?s){file}.*checkpoint_path="):
        effnet_lab.create_model(name, pretrained=True)
