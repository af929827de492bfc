"""The timm-style model API: features_only, heads, drop path, gradient checkpointing."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from conftest import max_diff, randomize_bn

import effnet_lab
from effnet_lab.paper.architecture import scaled_stages
from effnet_lab.weights.layouts import export_state_dict


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_es", "tf_efficientnet_lite0", "efficientnet_b3",
                                  "efficientnetv2_s", "tf_efficientnetv2_b0", "efficientnetv2_rw_t"])
def test_features_only_matches_timm(name, small_input):
    ours = randomize_bn(effnet_lab.create_model(name)).eval()
    peer = timm.create_model(name, features_only=True).eval()
    sd = {k: v for k, v in export_state_dict(ours, "timm").items() if k in peer.state_dict()}
    peer.load_state_dict(sd)
    feats = effnet_lab.create_model(name, features_only=True)
    feats.load_state_dict({k: v for k, v in ours.state_dict().items() if k in feats.state_dict()})
    feats.eval()

    assert feats.feature_info.channels() == peer.feature_info.channels()
    assert feats.feature_info.reduction() == peer.feature_info.reduction() == [2, 4, 8, 16, 32]
    with torch.no_grad():
        mine, theirs = feats(small_input), peer(small_input)
    assert len(mine) == len(theirs) == 5
    for a, b, r in zip(mine, theirs, feats.feature_info.reduction(), strict=True):
        assert a.shape == b.shape
        assert a.shape[-1] == small_input.shape[-1] // r
        assert max_diff(a, b) < 1e-4


def test_out_indices_and_errors():
    feats = effnet_lab.create_model("efficientnet_b0", features_only=True, out_indices=(2, 4))
    out = feats(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in out] == feats.feature_info.channels() == [40, 320]
    assert len(feats.stages) == 7
    shallow = effnet_lab.create_model("efficientnet_b0", features_only=True, out_indices=(1,))
    assert len(shallow.stages) == 2  # nothing past the last tap is kept
    with pytest.raises(ValueError, match="out_indices"):
        effnet_lab.create_model("efficientnet_b0", features_only=True, out_indices=(5,))


def test_model_feature_info_matches_timm():
    for name in ["efficientnet_b0", "efficientnet_em", "efficientnet_lite2"]:
        ours = effnet_lab.create_model(name).feature_info
        theirs = timm.create_model(name).feature_info
        assert [f["num_chs"] for f in ours] == [f["num_chs"] for f in theirs]
        assert [f["reduction"] for f in ours] == [f["reduction"] for f in theirs]


def test_backward_reaches_every_parameter():
    model = effnet_lab.create_model("efficientnet_b0", drop_path_rate=0.2, drop_rate=0.2).train()
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_drop_path_schedule_matches_timm_and_torchvision():
    ours = effnet_lab.create_model("efficientnet_b0", drop_path_rate=0.2)
    peer = timm.create_model("efficientnet_b0", drop_path_rate=0.2)
    timm_rates = [getattr(b.drop_path, "drop_prob", 0.0) for stage in peer.blocks for b in stage]
    # timm and we only apply drop path on blocks with a residual; compare those
    ours_rates = ours.drop_path_rates()
    skip = [b.has_skip for stage in ours.stages for b in stage]
    assert len(ours_rates) == len(timm_rates) == 16
    for r, t, s in zip(ours_rates, timm_rates, skip, strict=True):
        if s:
            assert r == pytest.approx(t)
    # torchvision applies stochastic depth with the same linear rule (rate · i / n)
    tv = torchvision.models.efficientnet_b0(stochastic_depth_prob=0.2)
    tv_rates = [b.stochastic_depth.p for stage in tv.features[1:8] for b in stage]
    assert ours.config and [pytest.approx(r) for r in tv_rates] == effnet_lab.paper.architecture.drop_path_schedule(
        ours.config)


def test_drop_path_drops_whole_samples_in_training_only():
    from effnet_lab.model.blocks import drop_path

    x = torch.ones(2000, 3, 2, 2)
    y = drop_path(x, 0.25, training=True)
    per_sample = y.flatten(1)
    kept = per_sample[per_sample != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))  # survivors rescaled
    assert ((per_sample == 0).all(1) | (per_sample > 0).all(1)).all()  # all or nothing per sample
    assert 0.2 < (per_sample[:, 0] == 0).float().mean().item() < 0.3
    assert torch.equal(drop_path(x, 0.25, training=False), x)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "tf_efficientnetv2_b0"])
def test_grad_checkpointing_gives_same_gradients(name):
    torch.manual_seed(0)
    a = effnet_lab.create_model(name, drop_rate=0.0)  # no randomness in forward
    b = effnet_lab.create_model(name, drop_rate=0.0)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 64, 64)
    for m in (a, b):
        m.train()
        m(x).square().mean().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), n


def test_heads():
    model = effnet_lab.create_model("efficientnet_b0").eval()
    x = torch.randn(1, 3, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (1, 1280, 2, 2)
    assert model.forward_head(feats, pre_logits=True).shape == (1, 1280)
    assert torch.equal(model.forward_head(feats), model(x))
    assert model.get_classifier() is model.classifier
    model.reset_classifier(7)
    assert model(x).shape == (1, 7) and model.pretrained_cfg["num_classes"] == 7
    model.reset_classifier(0)
    assert model(x).shape == (1, 1280)
    assert model.default_cfg is model.pretrained_cfg


def test_stage_table_resolutions_match_real_tensors():
    """scaled_stages() predicts each stage's output size without torch; check it with torch."""
    for name, size in [("efficientnet_b0", 224), ("efficientnet_b3", 300), ("efficientnet_es", 224)]:
        model = effnet_lab.create_model(name).eval()
        sizes, channels = [], []
        x = model.stem(torch.randn(1, 3, size, size))
        with torch.no_grad():
            for stage in model.stages:
                x = stage(x)
                sizes.append(x.shape[-1])
                channels.append(x.shape[1])
        table = scaled_stages(model.config, size)
        assert [s.out_resolution for s in table] == sizes
        assert [s.out_channels for s in table] == channels
        assert [s.repeats for s in table] == [len(st) for st in model.stages]


def test_predict_needs_no_torchvision_metadata():
    names = effnet_lab.imagenet_class_names()
    assert len(names) == 1000 and names[285] == "Egyptian cat"
