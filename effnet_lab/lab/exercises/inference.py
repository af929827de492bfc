"""Exercises for notebooks/04_pretrained_inference.ipynb. Every answer is computed by running
the real pipeline: the registry's data config, the eval transform it builds, the pretrained
Lite0 on the repository's photos, the features-only trunk on a real input."""

from __future__ import annotations

import torch

from . import exercise, lite0


@exercise(
    "inference.resize",
    "efficientnet_lite2 is evaluated at 260×260 with crop_pct = 0.890. To how many pixels does "
    "its eval transform resize the *shorter* side of a photo before the centre crop?",
    "timm's rule: resize the shorter side to floor(input size / crop_pct), then centre-crop the "
    "input size. You can read it off `create_transform(**config)` too.",
    "floor(260 / 0.890) = floor(292.13) = 292. The transform resizes the shorter side to 292 px "
    "and crops the central 260×260: the model sees 89% of the shorter side, as at training time. "
    "`effnet_lab.create_transform(**effnet_lab.get_entry('efficientnet_lite2').data_config())` "
    "prints Resize(size=292, …), CenterCrop(size=(260, 260)).",
)
def resize() -> int:
    from ...data.transforms import create_transform
    from ...model.registry import get_entry

    first = create_transform(**get_entry("efficientnet_lite2").data_config()).transforms[0]
    size = first.size
    return int(size if isinstance(size, int) else size[0])


@exercise(
    "inference.bgr_top1",
    "Feed rocket.jpg to the pretrained efficientnet_lite0 with its colour channels in BGR order "
    "(as OpenCV's cv2.imread would give them) but otherwise the right preprocessing. What is the "
    "top-1 class? Answer its name as in imagenet_class_names().",
    "Build the right tensor with resolve_data_config + create_transform, then reverse the channel "
    "axis: `tensor.flip(1)` for a (1, 3, H, W) batch. Take the argmax of the logits.",
    "With RGB the rocket is a 'missile' (0.274, 'projectile' 0.189 second). Swapping red and blue "
    "turns the orange launch flames and the evening sky into other colours, and the model's top-1 "
    "becomes 'drilling platform' (0.325): colour is evidence, and BGR silently changes it. "
    "A grayscale photo (camera.png) is immune: its three channels are equal.",
)
def bgr_top1() -> str:
    from ...data.config import resolve_data_config
    from ...data.images import load_image
    from ...data.resources import data_path, imagenet_class_names
    from ...data.transforms import create_transform

    model = lite0()
    tensor = create_transform(**resolve_data_config(model))(load_image(data_path("images", "rocket.jpg")))
    with torch.no_grad():
        logits = model(tensor.unsqueeze(0).flip(1))
    return imagenet_class_names()[int(logits.argmax())]


@exercise(
    "inference.feature_shape",
    "With `create_model('efficientnet_lite0', features_only=True)`, what is the shape "
    "(C, H, W) of the feature map at reduction 16 for one 224×224 image?",
    "`model.feature_info` lists channels and reductions per level; H = W = 224 / reduction. "
    "Or run a (1, 3, 224, 224) tensor through the model and look at the shapes.",
    "Reduction 16 is the output of paper stage 6 (MBConv6, k5×5, 112 channels), the last stage "
    "before the next stride-2 stage: 112 channels at 224 / 16 = 14, so (112, 14, 14).",
)
def feature_shape() -> tuple[int, int, int]:
    from ...model.registry import create_model

    trunk = create_model("efficientnet_lite0", features_only=True).eval()
    level = trunk.feature_info.reduction().index(16)
    with torch.no_grad():
        maps = trunk(torch.zeros(1, 3, 224, 224))
    return tuple(maps[level].shape[1:])
