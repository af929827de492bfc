"""Where does the network look? Grad-CAM with captum, and two checks that it means something.

Grad-CAM (Selvaraju et al., 2017) explains one class score y_c through the activations
A_k (k = channels) of one convolutional layer:

    α_k = (1/Z) Σ_ij ∂y_c/∂A_k[i, j]        (the spatial mean of the gradient, Z = h·w)
    CAM = ReLU(Σ_k α_k A_k)                  (an h×w map, upsampled to the input size)

`gradcam` computes it with `captum.attr.LayerGradCam` on the head conv of our EfficientNet
by default (see `default_layer` for why). The checks:

* sanity (Adebayo et al., 2018): re-initialise the weights (`randomized_copy`, top layers
  first with `cascade=`) and the map must change; `rank_correlation` measures how much.
* faithfulness (deletion): hiding the most highlighted pixels should lower p(class) more
  than hiding a random region of the same area (`masking_test`).

A leaf module: the core library never imports it (captum, matplotlib).
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from torch import nn

from ..data.config import resolve_data_config
from ..data.images import ImageSource, load_image
from ..data.transforms import create_transform
from ..model.device import eval_mode, model_device
from ..model.network import init_weights
from ..paper.architecture import scaled_stages

__all__ = [
    "MaskingResult",
    "cascade_order",
    "default_layer",
    "gradcam",
    "layer_choices",
    "masking_test",
    "overlay",
    "png_bytes",
    "prepare_image",
    "random_region_mask",
    "randomized_copy",
    "rank_correlation",
    "resolve_layer",
    "top_region_mask",
]


# ------------------------------------------------------------------------------- layers
def default_layer(model: nn.Module) -> str:
    """The layer Grad-CAM explains by default: ``"head"``, the last conv of the network.

    Why the head and not ``stages[-1]``: both are 7×7 for a 224 input, but the head is the
    last convolution, followed only by global average pooling and the linear classifier,
    so its 1280 channels are exactly the features the classifier weighs. There
    y_c = Σ_k W[c, k] · mean_ij A_k[i, j] + b_c, hence α_k = W[c, k] / (h·w): Grad-CAM at the
    head *is* the class activation map of Zhou et al. (2016), up to the constant 1/(h·w).
    Earlier layers have finer maps but less class-specific features. A features-only
    trunk (no head) falls back to its last stage.
    """
    names = dict(model.named_children())
    if "head" in names:
        return "head"
    stages = names.get("stages")
    if isinstance(stages, nn.Sequential) and len(stages):
        return f"stages.{len(stages) - 1}"
    raise ValueError("no default Grad-CAM layer: pass layer= (a module or its name)")


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """A module of `model` from its dotted name ("head", "stages.4"), itself, or the default."""
    if isinstance(layer, nn.Module):
        return layer
    name = default_layer(model) if layer is None else layer
    modules = dict(model.named_modules())
    if name not in modules:
        known = [n for _, n in layer_choices(model)] if hasattr(model, "config") else sorted(modules)[:20]
        raise ValueError(f"model has no layer {name!r}; try one of {known}")
    return modules[name]


def layer_choices(model: nn.Module) -> list[tuple[str, str]]:
    """(label, layer name) from the stem to the head, for a dropdown or `SelectionSlider`.

    Labels give Table 1's stage number (the stem is stage 1), the stride and the channels:
    ``"stage 6 (/16, 112 ch)"``; names are what `gradcam(layer=...)` takes (``"stages.4"``).
    """
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "stem"):
        raise TypeError("layer_choices needs an effnet_lab EfficientNet (or its features_only trunk)")
    stages = scaled_stages(config)[: len(model.stages)]
    out = [(f"stem (/2, {config.stem_out} ch)", "stem")]
    out += [(f"stage {s.paper_stage} (/{s.reduction}, {s.out_channels} ch)", f"stages.{s.index}") for s in stages]
    if hasattr(model, "head"):
        out.append((f"head (/{stages[-1].reduction}, {model.num_features} ch)", "head"))
    return out


# ------------------------------------------------------------------------------- images
def prepare_image(image: ImageSource, model: nn.Module) -> tuple[torch.Tensor, np.ndarray]:
    """The model's input for a photo, (1, 3, H, W), and the same crop as RGB in [0, 1] (H, W, 3)
    for display: the pixels the network sees, before normalisation."""
    config = resolve_data_config(model)
    img = load_image(image)
    tensor = create_transform(**config)(img).unsqueeze(0)
    plain = create_transform(**{**config, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)})(img)
    return tensor, plain.permute(1, 2, 0).numpy()


def _rgb_float(image: Any) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(load_image(image), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu().float()
        t = t[0] if t.ndim == 4 else t
        image = t.permute(1, 2, 0).numpy() if t.shape[0] in (1, 3) and t.ndim == 3 else t.numpy()
    arr = np.asarray(image)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.clip(arr, 0.0, 1.0)


def overlay(image: Any, heatmap: torch.Tensor | np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap (h×w, values in [0, 1]) over an RGB image: (H, W, 3) floats in [0, 1].

    `image` is a PIL image, an (H, W, 3) array (uint8 or floats in [0, 1]) or a (3, H, W)
    tensor in [0, 1]; a heatmap of another size is resized (bilinear) to the image's.
    """
    from matplotlib import colormaps

    rgb = _rgb_float(image)
    heat = torch.as_tensor(np.asarray(heatmap, dtype=np.float32))
    while heat.ndim > 2 and heat.shape[0] == 1:  # (1, h, w) from a batch of one
        heat = heat[0]
    if tuple(heat.shape) != rgb.shape[:2]:
        heat = F.interpolate(heat[None, None], size=rgb.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    colours = colormaps[cmap](heat.clamp(0, 1).numpy())[..., :3].astype(np.float32)
    return np.clip((1 - alpha) * rgb + alpha * colours, 0.0, 1.0)


def png_bytes(image: Any) -> bytes:
    """PNG-encode an RGB image (array in [0, 1] or uint8, or PIL) — for `ipywidgets.Image`."""
    arr = (_rgb_float(image) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="png")
    return buffer.getvalue()


# ------------------------------------------------------------------------------- Grad-CAM
def gradcam(
    model: nn.Module,
    image_tensor: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    layer: str | nn.Module | None = None,
    *,
    upsample: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """Grad-CAM heatmap(s) of `target` for a preprocessed image: (H, W) in [0, 1].

    image_tensor: (3, H, W) → returns (H, W); (N, 3, H, W) → returns (N, H, W).
    target: class index (one for all images, or one per image); None: each image's top-1.
    layer: a module of `model` or its name ("stem", "stages.0" … "stages.6", "head");
        None: `default_layer(model)`, the head.
    upsample: bilinear-resize the h×w layer map to the input's H×W (captum's
        `LayerAttribution.interpolate`); False keeps the layer's resolution.
    normalize: divide each map by its maximum (an all-zero map stays zero); False keeps
        the raw ReLU(Σ_k α_k A_k).

    The model is run in eval mode (restored afterwards) on its own device; the result is
    a CPU tensor.
    """
    single = image_tensor.ndim == 3
    x = (image_tensor[None] if single else image_tensor).detach().to(model_device(model)).float()
    module = resolve_layer(model, layer)
    with eval_mode(model), torch.enable_grad():
        if target is None:
            with torch.no_grad():
                target = model(x).argmax(dim=1)
        targets = torch.as_tensor(target, device=x.device).long().flatten()
        if targets.numel() == 1:
            targets = targets.expand(len(x))  # one class for every image
        if len(targets) != len(x):
            raise ValueError(f"{len(targets)} targets for {len(x)} images")
        # Captum hooks `module`, takes d y_target / d A, averages it over space (α_k),
        # sums α_k A_k over channels and applies the ReLU.
        cam = LayerGradCam(model, module).attribute(x.requires_grad_(True), target=targets,
                                                    relu_attributions=True)
    cam = cam.detach()
    if upsample:
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    cam = cam[:, 0].float().cpu()
    if normalize:
        peak = cam.flatten(1).amax(dim=1).clamp(min=torch.finfo(cam.dtype).tiny)
        cam = cam / peak[:, None, None]
    return cam[0] if single else cam


# ------------------------------------------------------------------------------- sanity check
def cascade_order(model: nn.Module) -> list[str]:
    """Module names from the output down to the input, the order in which Adebayo et al.'s
    cascading randomisation re-initialises them: classifier, head, last stage … stem."""
    names = dict(model.named_children())
    order = [n for n in ("classifier", "head") if n in names and any(True for _ in names[n].parameters())]
    order += [f"stages.{i}" for i in reversed(range(len(model.stages)))]
    return order + ["stem"]


def randomized_copy(model: nn.Module, seed: int = 0, cascade: int | None = None) -> nn.Module:
    """A copy of `model` with re-initialised (random) weights; `model` is untouched.

    cascade: re-initialise only the top `cascade` entries of `cascade_order(model)`
    (1: the classifier, 2: classifier and head, …); None: everything.
    """
    order = cascade_order(model)
    chosen = order if cascade is None else order[:cascade]
    clone = copy.deepcopy(model)
    modules = dict(clone.named_modules())
    generator = torch.Generator().manual_seed(seed)
    device = model_device(clone)
    clone.cpu()
    for name in chosen:
        init_weights(modules[name], generator)  # a fresh network's weights, as EfficientNet draws them
        for m in modules[name].modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()  # and identity statistics: mean 0, variance 1
    return clone.to(device)


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    edges = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])
    average = (edges[:-1] + edges[1:] - 1) / 2.0 + 1.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(average, np.diff(edges))
    return ranks


def rank_correlation(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Spearman's rank correlation of two maps of the same shape (1: same ordering of pixels,
    0: unrelated). Ties (e.g. the zeros the ReLU leaves) get average ranks."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {np.shape(a)} vs {np.shape(b)}")
    rx, ry = _rankdata(x), _rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else 0.0


# ------------------------------------------------------------------------------- faithfulness
def top_region_mask(heatmap: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean H×W mask of the round(fraction·H·W) pixels with the highest heatmap values."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    heat = torch.as_tensor(heatmap, dtype=torch.float32)
    k = round(fraction * heat.numel())
    # stable sort: equal values are taken in pixel order, so the mask is reproducible
    index = torch.sort(heat.flatten(), descending=True, stable=True).indices[:k]
    mask = torch.zeros(heat.numel(), dtype=torch.bool)
    mask[index] = True
    return mask.view(heat.shape)


def random_region_mask(size: tuple[int, int], fraction: float, generator: torch.Generator,
                       grid: int = 7) -> torch.Tensor:
    """A random region with the same area as `top_region_mask(·, fraction)`: a random grid×grid
    map, upsampled like a Grad-CAM map, thresholded at the same pixel count. Blobs as smooth as
    a CAM's, at random places."""
    noise = torch.rand(1, 1, grid, grid, generator=generator)
    smooth = F.interpolate(noise, size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
    return top_region_mask(smooth, fraction)


@dataclass(frozen=True)
class MaskingResult:
    target: int
    fraction: float
    prob: float  # p(target) for the intact image
    prob_cam: float  # with the top-CAM region hidden
    prob_random: float  # with a random region of the same area hidden (mean over draws)

    @property
    def drop_cam(self) -> float:
        return self.prob - self.prob_cam

    @property
    def drop_random(self) -> float:
        return self.prob - self.prob_random


def masking_test(
    model: nn.Module,
    image_tensor: torch.Tensor,
    heatmap: torch.Tensor,
    target: int | None = None,
    fraction: float = 0.2,
    n_random: int = 8,
    seed: int = 0,
    fill: float = 0.0,
) -> MaskingResult:
    """Deletion test: hide the top-`fraction` Grad-CAM pixels, or `n_random` random regions of
    the same area (seeded), and measure p(target) each time.

    Hidden pixels are set to `fill` in the normalised input: 0 is the normalisation mean, a
    flat grey for the TF ports (mean = std = 0.5). A faithful map gives drop_cam > drop_random.
    """
    x = (image_tensor[None] if image_tensor.ndim == 3 else image_tensor).detach().float()
    if len(x) != 1:
        raise ValueError("masking_test takes one image")
    size = tuple(x.shape[-2:])
    heat = torch.as_tensor(heatmap, dtype=torch.float32)
    if tuple(heat.shape) != size:
        raise ValueError(f"heatmap is {tuple(heat.shape)}, the image {size}: use gradcam(..., upsample=True)")
    generator = torch.Generator().manual_seed(seed)
    masks = [top_region_mask(heat, fraction)]
    masks += [random_region_mask(size, fraction, generator, grid=7) for _ in range(n_random)]
    batch = x.repeat(1 + len(masks), 1, 1, 1)
    for i, mask in enumerate(masks, start=1):
        batch[i][:, mask] = fill
    with eval_mode(model), torch.no_grad():
        probs = model(batch.to(model_device(model))).float().softmax(dim=1).cpu()
    if target is None:
        target = int(probs[0].argmax())
    p = probs[:, target]
    return MaskingResult(target, fraction, float(p[0]), float(p[1]), float(p[2:].mean()))
