"""EfficientNetV2-S/M/L against torchvision: the same networks, weights, costs and data configs.
(timm's same-named models are compared in test_models_vs_peers, as every registered model is.)"""

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
