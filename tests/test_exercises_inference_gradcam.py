"""The exercises of notebooks 04 (inference) and 05 (Grad-CAM): each registered answer equals an
independent computation, and `check` answers right / not quite + hint / not answered."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import forward_with_activation, manual_gradcam, said
from PIL import Image

import effnet_lab
from effnet_lab.lab.exercises import all_exercises, check, get, solution

KEYS = ("inference.resize", "inference.bgr_top1", "inference.feature_shape",
        "gradcam.map_size", "gradcam.alpha_denominator", "gradcam.tiger_vs_tabby")


def _timm_eval_tensor(path, size=224, crop_pct=0.875, mean=0.5, std=0.5) -> torch.Tensor:
    """The eval pipeline written with PIL and numpy only: shorter side to floor(size/crop_pct)
    (bicubic), centre crop, scale to [0, 1], normalise."""
    img = Image.open(path).convert("RGB")
    short = math.floor(size / crop_pct)
    w, h = img.size
    new = (short, int(h * short / w)) if w <= h else (int(w * short / h), short)  # torchvision truncates
    img = img.resize(new, Image.Resampling.BICUBIC)
    left, top = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
    arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    return torch.from_numpy((arr - mean) / std).permute(2, 0, 1)


def test_all_keys_registered():
    keys = {k for k in all_exercises() if k.split(".")[0] in ("inference", "gradcam")}
    assert keys == set(KEYS)
    for key in KEYS:
        ex = get(key)
        assert ex.question and ex.hint and ex.solution


def test_resize():
    assert get("inference.resize").answer() == math.floor(260 / 0.890) == 292


def test_bgr_top1(lite0):
    """The labels come from timm's tf_efficientnet_lite0 holding the same weights."""
    import timm

    from effnet_lab.weights.layouts import export_state_dict

    peer = timm.create_model("tf_efficientnet_lite0").eval()
    peer.load_state_dict(export_state_dict(lite0, "timm"))
    x = _timm_eval_tensor(effnet_lab.data_path("images", "rocket.jpg"))
    bgr = x[[2, 1, 0]].unsqueeze(0)
    with torch.no_grad():
        rgb_name, bgr_name = (effnet_lab.imagenet_class_names()[int(peer(t).argmax())] for t in (x[None], bgr))
    assert get("inference.bgr_top1").answer() == bgr_name
    assert rgb_name != bgr_name  # the swap really changes the answer


def test_feature_shape():
    # Table 1: the last stage at stride 16 is stage 6 (112 channels; Lite keeps B0's width)
    expected = (112, math.ceil(224 / 16), math.ceil(224 / 16))
    assert get("inference.feature_shape").answer() == expected
    timm = pytest.importorskip("timm")
    trunk = timm.create_model("efficientnet_lite0", features_only=True, pretrained=False)
    level = trunk.feature_info.reduction().index(16)
    assert trunk.feature_info.channels()[level] == expected[0]


def test_map_size():
    model = effnet_lab.create_model("efficientnet_lite0").eval()
    _, a = forward_with_activation(model, model.stages[2], torch.zeros(1, 3, 224, 224))
    assert get("gradcam.map_size").answer() == tuple(a.shape[-2:]) == (28, 28)


def test_alpha_denominator():
    model = effnet_lab.create_model("efficientnet_lite0").eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    logits, a = forward_with_activation(model, model.head, x)
    (grad,) = torch.autograd.grad(logits[0, 10], a)
    h, w = a.shape[-2:]
    # the gradient is the same at every position, W[c, k] / (h·w)
    torch.testing.assert_close(grad[0], (model.classifier.weight[10] / (h * w))[:, None, None].expand_as(grad[0]))
    assert get("gradcam.alpha_denominator").answer() == h * w == 49


def test_tiger_vs_tabby(lite0):
    stats = pytest.importorskip("scipy.stats")
    x = _timm_eval_tensor(effnet_lab.data_path("images", "chelsea.png"))[None]
    maps = [manual_gradcam(lite0, x, [c], lite0.head, normalize=False).flatten().numpy() for c in (282, 281)]
    rho = stats.spearmanr(*maps).statistic
    answer = get("gradcam.tiger_vs_tabby").answer()
    assert answer == pytest.approx(rho, abs=1e-3)
    assert get("gradcam.tiger_vs_tabby").is_right(round(rho, 2))


def test_check_messages(capsys):
    check("inference.resize", 292)
    assert "✔ right" in capsys.readouterr().out
    check("inference.resize", 256)
    out = capsys.readouterr().out
    assert "✘ not quite (256)" in out and "floor(input size / crop_pct)" in said(out)
    check("inference.resize", ...)
    assert "not answered yet" in capsys.readouterr().out
    check("gradcam.map_size", (28, 28))
    assert "✔ right" in capsys.readouterr().out
    check("gradcam.map_size", [28, 28])
    assert "✔ right" in capsys.readouterr().out
    check("gradcam.map_size", (7, 7))
    assert "✘ not quite" in capsys.readouterr().out
    check("inference.feature_shape", (112, 14, 14))
    assert "✔ right" in capsys.readouterr().out
    solution("gradcam.alpha_denominator")
    out = capsys.readouterr().out
    assert "Answer: 49" in out and "Zhou" in out
