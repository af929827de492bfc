"""Grad-CAM (effnet_lab.lab.explain) against an independent computation with plain autograd hooks,
and its sanity and faithfulness checks on the real pretrained Lite0 and the repository's photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import manual_gradcam
from PIL import Image

import effnet_lab
from effnet_lab.lab import explain

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "astronaut.png")


@pytest.fixture(scope="module")
def photos(lite0) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    return {name: explain.prepare_image(effnet_lab.data_path("images", name), lite0) for name in PHOTOS}


@pytest.fixture(scope="module")
def top1(lite0, photos) -> dict[str, int]:
    with torch.no_grad():
        logits = lite0(torch.cat([x for x, _ in photos.values()]))
    return dict(zip(photos, logits.argmax(1).tolist(), strict=True))


# ------------------------------------------------------------------------ against autograd
@pytest.mark.parametrize("layer", ["stem", "stages.2", "stages.4", "stages.6", "head"])
def test_gradcam_matches_manual_hooks(lite0, photos, layer):
    x = torch.cat([photos["coffee.png"][0], photos["chelsea.png"][0]])
    targets = [967, 281]  # espresso; tabby (the cat's third class, not its top-1)
    ours = explain.gradcam(lite0, x, targets, layer=layer)
    module = dict(lite0.named_modules())[layer]
    reference = manual_gradcam(lite0, x, targets, module)
    assert ours.shape == (2, 224, 224)
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(("layer", "size"), [("stages.2", 28), ("stages.4", 14), ("head", 7)])
def test_raw_map_at_layer_resolution(lite0, photos, layer, size):
    x = photos["camera.png"][0]
    ours = explain.gradcam(lite0, x[0], 872, layer=layer, upsample=False, normalize=False)
    reference = manual_gradcam(lite0, x, [872], dict(lite0.named_modules())[layer], upsample=False,
                               normalize=False)[0]
    assert ours.shape == (size, size)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-4)


def test_head_gradcam_is_the_class_activation_map(lite0, photos):
    """After the head: global average pooling and a linear layer, so α_k = W[c, k] / (h·w) and
    Grad-CAM = ReLU(Σ_k W[c, k] A_k) / 49, the CAM of Zhou et al. (2016), scaled."""
    x = photos["coffee.png"][0]
    with torch.no_grad():
        a = lite0.forward_features(x)[0]  # head output, (1280, 7, 7)
    w = lite0.classifier.weight[967]
    cam = F.relu(torch.einsum("k,kij->ij", w, a)) / 49
    ours = explain.gradcam(lite0, x[0], 967, upsample=False, normalize=False)
    torch.testing.assert_close(ours, cam, atol=1e-6, rtol=1e-4)


def test_random_network_any_input_size():
    torch.manual_seed(0)
    model = effnet_lab.create_model("efficientnet_b0")
    x = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    ours = explain.gradcam(model, x, [3, 7], layer="stages.5")
    reference = manual_gradcam(model.eval(), x, [3, 7], model.stages[5])
    assert ours.shape == (2, 96, 128)
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-4)


# ------------------------------------------------------------------------ shapes and contract
def test_shapes_range_and_default_target(lite0, photos, top1):
    x = photos["rocket.jpg"][0]
    cam = explain.gradcam(lite0, x[0])
    assert cam.shape == (224, 224) and cam.dtype == torch.float32 and cam.device.type == "cpu"
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    torch.testing.assert_close(cam, explain.gradcam(lite0, x[0], top1["rocket.jpg"]))
    batch = torch.cat([p[0] for p in photos.values()])
    maps = explain.gradcam(lite0, batch)
    assert maps.shape == (len(PHOTOS), 224, 224)
    torch.testing.assert_close(maps[2], cam, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="targets"):
        explain.gradcam(lite0, batch, [1, 2])


def test_model_left_as_it_was():
    model = effnet_lab.create_model("efficientnet_lite0")
    model.train()
    model.stages[0].eval()  # a deliberately frozen part stays frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explain.gradcam(model, torch.randn(3, 64, 64), 5)
    assert model.training and not model.stages[0].training and model.stages[1].training
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # eval mode: BN statistics untouched


def test_layer_choices_and_names(lite0):
    choices = explain.layer_choices(lite0)
    assert [name for _, name in choices] == ["stem"] + [f"stages.{i}" for i in range(7)] + ["head"]
    assert choices[0][0] == "stem (/2, 32 ch)" and choices[-1][0] == "head (/32, 1280 ch)"
    assert choices[5][0] == "stage 6 (/16, 112 ch)"
    x = torch.zeros(1, 3, 224, 224)
    for label, name in choices:
        reduction = int(label.split("(/")[1].split(",")[0])
        cam = explain.gradcam(lite0, x, 0, layer=name, upsample=False)
        assert cam.shape[-1] == 224 // reduction, label
    assert explain.default_layer(lite0) == "head"
    assert explain.resolve_layer(lite0, None) is lite0.head
    assert explain.resolve_layer(lite0, lite0.stages[3]) is lite0.stages[3]
    with pytest.raises(ValueError, match="no layer 'stages.9'"):
        explain.resolve_layer(lite0, "stages.9")
    trunk = effnet_lab.create_model("efficientnet_lite0", features_only=True)
    assert explain.default_layer(trunk) == "stages.6"


# ------------------------------------------------------------------------ similarity measure
def test_rank_correlation_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = F.relu(torch.randn(30, 30, generator=g))  # many tied zeros, as after Grad-CAM's ReLU
    b = F.relu(a + 0.7 * torch.randn(30, 30, generator=g))
    expected = stats.spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
    assert explain.rank_correlation(a, b) == pytest.approx(expected, abs=1e-12)
    assert explain.rank_correlation(a, a) == pytest.approx(1.0)
    assert explain.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert explain.rank_correlation(a, torch.zeros(30, 30)) == 0.0  # a constant map: no ordering
    with pytest.raises(ValueError, match="differ in size"):
        explain.rank_correlation(a, b[:5])


# ------------------------------------------------------------------------ sanity check
def test_randomized_copy(lite0):
    reference = {k: v.clone() for k, v in lite0.state_dict().items()}
    assert explain.cascade_order(lite0) == ["classifier", "head"] + [f"stages.{i}" for i in range(6, -1, -1)] + ["stem"]
    top = explain.randomized_copy(lite0, seed=0, cascade=1)
    assert not torch.equal(top.classifier.weight, lite0.classifier.weight)
    changed = {k for k, v in top.state_dict().items() if not torch.equal(v, reference[k])}
    assert changed == {"classifier.weight", "classifier.bias"}
    full = explain.randomized_copy(lite0, seed=0)
    convs = [k for k, v in reference.items() if k.endswith("conv.weight") or v.ndim == 4]
    assert all(not torch.equal(full.state_dict()[k], reference[k]) for k in convs)
    again = explain.randomized_copy(lite0, seed=0)
    other = explain.randomized_copy(lite0, seed=1)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in full.state_dict().items())
    assert not torch.equal(other.head.conv.weight, full.head.conv.weight)
    assert all(torch.equal(v, reference[k]) for k, v in lite0.state_dict().items())  # original untouched


def test_randomising_weights_destroys_the_map(lite0, photos, top1):
    """Adebayo et al. (2018): a map that survives re-initialising the weights does not explain
    the model. Randomising only the classifier, or every layer, must decorrelate the maps."""
    x = torch.cat([p[0] for p in photos.values()])
    targets = list(top1.values())
    trained = explain.gradcam(lite0, x, targets)
    again = explain.gradcam(lite0, x, targets)
    assert all(explain.rank_correlation(a, b) == pytest.approx(1.0) for a, b in zip(trained, again, strict=True))
    for cascade in (1, None):
        random_maps = explain.gradcam(explain.randomized_copy(lite0, seed=0, cascade=cascade), x, targets)
        rhos = [explain.rank_correlation(a, b) for a, b in zip(trained, random_maps, strict=True)]
        assert np.mean(rhos) < 0.3, (cascade, rhos)
        assert max(rhos) < 0.7, (cascade, rhos)


# ------------------------------------------------------------------------ faithfulness
def test_region_masks():
    heat = torch.rand(20, 30, generator=torch.Generator().manual_seed(0))
    mask = explain.top_region_mask(heat, 0.25)
    assert mask.dtype == torch.bool and mask.sum() == 150
    assert heat[mask].min() >= heat[~mask].max()
    tied = explain.top_region_mask(torch.zeros(10, 10), 0.3)
    assert tied.sum() == 30 and tied.flatten()[:30].all()  # ties: first pixels, reproducibly
    r1 = explain.random_region_mask((224, 224), 0.2, torch.Generator().manual_seed(3))
    r2 = explain.random_region_mask((224, 224), 0.2, torch.Generator().manual_seed(3))
    r3 = explain.random_region_mask((224, 224), 0.2, torch.Generator().manual_seed(4))
    assert r1.sum() == round(0.2 * 224 * 224) and torch.equal(r1, r2) and not torch.equal(r1, r3)
    with pytest.raises(ValueError, match="fraction"):
        explain.top_region_mask(heat, 1.0)


def test_masking_test_bookkeeping(lite0, photos):
    x = photos["coffee.png"][0]
    cam = explain.gradcam(lite0, x[0], 967)
    result = explain.masking_test(lite0, x, cam, 967, fraction=0.2, n_random=4, seed=0)
    with torch.no_grad():
        p = lite0(x).softmax(1)[0, 967].item()
    assert result.prob == pytest.approx(p, abs=1e-5)
    masked = x.clone()
    masked[0][:, explain.top_region_mask(cam, 0.2)] = 0.0
    with torch.no_grad():
        p_cam = lite0(masked).softmax(1)[0, 967].item()
    assert result.prob_cam == pytest.approx(p_cam, abs=1e-5)
    assert result.drop_cam == pytest.approx(result.prob - result.prob_cam)
    assert explain.masking_test(lite0, x, cam, 967, fraction=0.2, n_random=4, seed=0) == result  # seeded
    assert explain.masking_test(lite0, x, cam).target == 967  # default: the top-1 class
    with pytest.raises(ValueError, match="upsample"):
        explain.masking_test(lite0, x, cam[:7, :7])


def test_masking_the_cam_region_hurts_more_than_a_random_region(lite0, photos, top1):
    x = torch.cat([p[0] for p in photos.values()])
    maps = explain.gradcam(lite0, x, list(top1.values()))
    results = {name: explain.masking_test(lite0, x[i], maps[i], top1[name], fraction=0.2, seed=0)
               for i, name in enumerate(photos)}
    drops_cam = [r.drop_cam for r in results.values()]
    drops_random = [r.drop_random for r in results.values()]
    assert np.mean(drops_cam) > np.mean(drops_random) + 0.15, results
    for name in ("coffee.png", "rocket.jpg", "camera.png", "astronaut.png"):  # photos with a clear object
        assert results[name].drop_cam > results[name].drop_random + 0.05, (name, results[name])


# ------------------------------------------------------------------------ where the maps point
def _box_mean(cam, rows, cols):
    inside = torch.zeros_like(cam, dtype=torch.bool)
    inside[rows, cols] = True
    return cam[inside].mean().item(), cam[~inside].mean().item()


def test_maps_point_at_the_objects(lite0, photos):
    centre = (slice(56, 168), slice(56, 168))
    cat_in, cat_out = _box_mean(explain.gradcam(lite0, photos["chelsea.png"][0][0], 282), *centre)
    assert cat_in > cat_out  # the cat fills the crop; its face (centre) more than the border
    cup_in, cup_out = _box_mean(explain.gradcam(lite0, photos["coffee.png"][0][0], 967), *centre)
    assert cup_in > 2 * cup_out
    # camera.png: the tripod stands in the lower middle; the sky is at the top
    tripod = explain.gradcam(lite0, photos["camera.png"][0][0], 872)
    assert tripod[140:, 70:180].mean() > 3 * tripod[:60].mean()
    # astronaut.png: 'football helmet' is the space helmet in the lower right corner
    helmet = explain.gradcam(lite0, photos["astronaut.png"][0][0], 560)
    assert helmet[150:, 150:].mean() > 3 * helmet[:112].mean()


# ------------------------------------------------------------------------ display helpers
def test_overlay_and_png(photos):
    _, rgb = photos["coffee.png"]
    assert rgb.shape == (224, 224, 3) and 0.0 <= rgb.min() and rgb.max() <= 1.0
    heat = torch.linspace(0, 1, 49).view(7, 7)  # smaller than the image: resized
    for image in (rgb, (rgb * 255).astype(np.uint8), torch.from_numpy(rgb).permute(2, 0, 1),
                  Image.fromarray((rgb * 255).astype(np.uint8))):
        out = explain.overlay(image, heat, alpha=0.4)
        assert out.shape == (224, 224, 3) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_allclose(explain.overlay(rgb, heat, alpha=0.0), rgb, atol=1e-6)
    # the blend itself, with a full-size heatmap (no resize): matplotlib's jet, 60/40
    from matplotlib import colormaps

    full = np.linspace(0, 1, 224 * 224, dtype=np.float32).reshape(224, 224)
    expected = 0.6 * rgb + 0.4 * colormaps["jet"](full)[..., :3]
    np.testing.assert_allclose(explain.overlay(rgb, full, alpha=0.4), expected, atol=1e-6)
    decoded = Image.open(io.BytesIO(explain.png_bytes(explain.overlay(rgb, heat))))
    assert decoded.size == (224, 224) and decoded.mode == "RGB"


def test_prepare_image_matches_the_model_pipeline(lite0):
    path = effnet_lab.data_path("images", "camera.png")  # grayscale: converted to RGB
    x, rgb = explain.prepare_image(path, lite0)
    config = effnet_lab.resolve_data_config(lite0)
    expected = effnet_lab.create_transform(**config)(effnet_lab.load_image(path)).unsqueeze(0)
    torch.testing.assert_close(x, expected)
    torch.testing.assert_close(torch.from_numpy(rgb).permute(2, 0, 1), x[0] * 0.5 + 0.5, atol=1e-6, rtol=0)
