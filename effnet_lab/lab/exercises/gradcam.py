"""Exercises for notebooks/05_gradcam.ipynb. Every answer is computed by running Grad-CAM
(or autograd directly) on a real Lite0: the layer's map size, the gradient that Grad-CAM
averages, the maps of two classes of the pretrained model on the cat photo."""

from __future__ import annotations

import torch

from . import exercise, lite0


@exercise(
    "gradcam.map_size",
    "For a 224×224 input to efficientnet_lite0, what is the spatial size (h, w) of the raw "
    "Grad-CAM map at layer 'stages.2' (paper stage 4, before upsampling to the input)?",
    "Grad-CAM's map has the resolution of the layer's activations. 'stages.2' ends at "
    "reduction 8 (see layer_choices(model)); or call gradcam(..., layer='stages.2', upsample=False).",
    "The stem halves 224 to 112; stages.0 keeps 112; stages.1 (paper stage 3) halves it to 56 and "
    "stages.2 (paper stage 4) to 28: the map is (28, 28). Finer than the head's 7×7, so it shows "
    "smaller details, but these channels carry edges and textures rather than whole objects.",
)
def map_size() -> tuple[int, int]:
    from ..explain import gradcam

    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    cam = gradcam(lite0(pretrained=False), x, target=0, layer="stages.2", upsample=False)
    return tuple(cam.shape[-2:])


@exercise(
    "gradcam.alpha_denominator",
    "At the head of efficientnet_lite0 (224×224 input), Grad-CAM's channel weight for class c "
    "is α_k = W[c, k] / N, with W the classifier's weight matrix. What is N?",
    "After the head come only global average pooling and the linear classifier: "
    "y_c = Σ_k W[c, k] · mean_ij A_k[i, j] + b_c. Differentiate with respect to one A_k[i, j].",
    "∂y_c/∂A_k[i, j] = W[c, k] / (h·w) at every position, so its spatial mean α_k is the same "
    "W[c, k] / (h·w). The head map is 7×7, so N = 49: Grad-CAM at the last conv layer is the "
    "class activation map (CAM) of Zhou et al. (2016), divided by 49.",
)
def alpha_denominator() -> int:
    model = lite0(pretrained=False)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    stored = {}
    handle = model.head.register_forward_hook(lambda m, i, out: stored.update(a=out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    c = 0
    (grad,) = torch.autograd.grad(logits[0, c], stored["a"])
    alpha = grad[0].mean(dim=(1, 2))
    w = model.classifier.weight[c].detach()
    return round(float(w @ w / (w @ alpha)))  # least squares: W ≈ N·α


@exercise(
    "gradcam.tiger_vs_tabby",
    "On chelsea.png the pretrained Lite0 says 'tiger cat' (0.393), 'Egyptian cat' (0.356), "
    "'tabby' (0.170). Compute the Grad-CAM maps (default layer, 224×224) for 'tiger cat' "
    "(class 282) and 'tabby' (class 281). What is their rank correlation "
    "(explain.rank_correlation), to 2 decimals?",
    "prepare_image gives the tensor; gradcam(model, x, target=282) and target=281; then "
    "rank_correlation(map_a, map_b).",
    "ρ ≈ 0.92: the two maps rank the pixels almost alike. Both classes rest on the same "
    "evidence (the striped fur around the face); Grad-CAM at 7×7 cannot tell fine-grained "
    "classes apart, which is why the network itself hesitates between them. Compare the "
    "astronaut photo, where 'football helmet' and 'space shuttle' light up different objects "
    "and ρ is negative.",
    tolerance=0.01,
)
def tiger_vs_tabby() -> float:
    from ...data.resources import data_path
    from ..explain import gradcam, prepare_image, rank_correlation

    model = lite0()
    x, _ = prepare_image(data_path("images", "chelsea.png"), model)
    maps = gradcam(model, x.repeat(2, 1, 1, 1), target=[282, 281])
    return round(rank_correlation(maps[0], maps[1]), 3)
