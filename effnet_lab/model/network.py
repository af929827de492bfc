"""The EfficientNet network: stem → stages of MBConv blocks → head → classifier.

Read top to bottom: `EfficientNet` builds itself from an `EfficientNetConfig`
(paper/architecture.py), block by block, with the drop-path rate growing along the way;
each stage's block class comes from the one table of block kinds (`blocks.block_class`).
`EfficientNetFeatures` is the same trunk returning one feature map per resolution level
(timm's `features_only`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..paper.architecture import EfficientNetConfig, drop_path_schedule, scaled_stages
from .blocks import ConvBnAct, block_class

# What a fine-tune adds that `pretrained_cfg` reports: its class names and its data config.
FINE_TUNE_CFG_KEYS = ("label_names", "input_size", "crop_pct", "interpolation", "mean", "std", "crop_mode")


class FeatureInfo(list):
    """One dict per resolution level: `num_chs`, `reduction`, `module` (like timm's)."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


@torch.no_grad()
def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Fresh weights for every conv, BatchNorm and linear layer in `module`, as in the TF
    reference: He-normal on fan-out for convs, uniform ±1/√fan-out for linear layers, BatchNorm
    scale 1 and shift 0 (running statistics are left alone). Draws from `generator` if given."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            m.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.shape[0])
            m.weight.uniform_(-bound, bound, generator=generator)
            if m.bias is not None:
                m.bias.zero_()


class ReadOnlyDict(dict):
    """A dict that refuses changes (`pretrained_cfg`, `fine_tune`): metadata is set in one
    declared place, not edited from anywhere. Copies (`dict(cfg)`, `{**cfg, ...}`) are plain dicts."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this config is read-only: build a new dict ({**cfg, key: value}) and assign it")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore

    def __reduce__(self):  # copy.deepcopy and pickling build a new one instead of mutating
        return (type(self), (dict(self),))


def optimizer_param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_lr: float | None = None,
                           head: str = "classifier.") -> list[dict[str, Any]]:
    """The optimizer's parameter groups for the trainable parameters of any model.

    No weight decay on biases and normalisation parameters (every tensor of one dimension):
    decaying a BatchNorm scale towards 0 only fights the next layer. Parameters whose name
    starts with `head` learn at `lr`, the others at `backbone_lr` (default `lr`). Groups are
    named (head, head_no_decay, backbone, backbone_no_decay) and empty ones left out.
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((name.startswith(head), p.ndim > 1), []).append(p)
    backbone_lr = lr if backbone_lr is None else backbone_lr
    return [{"params": ps, "lr": lr if is_head else backbone_lr, "weight_decay": weight_decay if decay else 0.0,
             "name": f"{'head' if is_head else 'backbone'}{'' if decay else '_no_decay'}"}
            for (is_head, decay), ps in sorted(groups.items())]


class EfficientNet(nn.Module):
    """An EfficientNet built from `config`, with a `num_classes` classifier (0: none).

    `pretrained_cfg` (read-only, timm's name) says what its weights are and how to feed it:
    `create_model` sets it once, and a fine-tune's additions (class names, the data config it
    trained with) live in `fine_tune`, which `pretrained_cfg` reports on top.
    """

    def __init__(self, config: EfficientNetConfig, num_classes: int = 1000, in_chans: int = 3,
                 pretrained_cfg: Mapping[str, Any] | None = None):
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        opts = dict(bn_eps=config.bn_eps, tf_same_padding=config.tf_same_padding)

        self.stem = ConvBnAct(in_chans, config.stem_out, 3, stride=config.stem_stride, act=config.act, **opts)

        stages = scaled_stages(config)
        rates = iter(drop_path_schedule(config))
        self.stages = nn.Sequential()
        for s in stages:
            blocks = []
            for j in range(s.repeats):
                blocks.append(block_class(s.block)(
                    s.in_channels if j == 0 else s.out_channels, s.out_channels, s.kernel,
                    s.stride if j == 0 else 1, s.expand, se_ratio=s.se, act=config.act,
                    drop_path_rate=next(rates), skip=s.skip, mid_from=s.mid_from,
                    always_project=s.always_project, **opts))
            self.stages.append(nn.Sequential(*blocks))

        self.num_features = config.head_out
        self.head = ConvBnAct(stages[-1].out_channels, self.num_features, 1, act=config.act, **opts)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(config.dropout)
        self.classifier: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

        self.feature_info = _feature_info(stages, config.stem_stride)
        self.grad_checkpointing = False
        self._pretrained_cfg: dict[str, Any] = dict(pretrained_cfg or {})
        self._fine_tune: dict[str, Any] | None = None
        self._refresh_cfg()
        self._init_weights()

    def _init_weights(self) -> None:
        init_weights(self)

    # -- what the weights are ----------------------------------------------------------------
    @property
    def pretrained_cfg(self) -> Mapping[str, Any]:
        """Read-only: the weights' data config and origin, a fine-tune's class names and data
        config on top, and the current `num_classes`."""
        return self._cfg_view

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg: Mapping[str, Any]) -> None:
        self._pretrained_cfg = dict(cfg)
        self._refresh_cfg()

    @property
    def fine_tune(self) -> Mapping[str, Any] | None:
        """What a fine-tune added (read-only), or None: `label_names`, the data config it trained
        with, and whatever the trainer recorded about the run."""
        return None if self._fine_tune is None else ReadOnlyDict(self._fine_tune)

    @fine_tune.setter
    def fine_tune(self, info: Mapping[str, Any] | None) -> None:
        self._fine_tune = None if info is None else dict(info)
        self._refresh_cfg()

    def _refresh_cfg(self) -> None:
        added = {k: v for k, v in (self._fine_tune or {}).items() if k in FINE_TUNE_CFG_KEYS}
        self._cfg_view = ReadOnlyDict({**self._pretrained_cfg, **added, "num_classes": self.num_classes})

    def param_groups(self, lr: float, weight_decay: float, backbone_lr: float | None = None) -> list[dict]:
        """AdamW groups: the classifier at `lr`, the rest at `backbone_lr`, no decay on biases and
        BatchNorm (`optimizer_param_groups`)."""
        return optimizer_param_groups(self, lr, weight_decay, backbone_lr)

    # -- forward ---------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.grad_checkpointing and torch.is_grad_enabled():
            # Recompute each stage's activations in backward instead of storing them.
            for stage in self.stages:
                x = checkpoint(stage, x, use_reentrant=False)
        else:
            x = self.stages(x)
        return self.head(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        x = self.head_drop(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # -- timm-style conveniences -----------------------------------------------------------
    @property
    def default_cfg(self) -> Mapping[str, Any]:  # timm's older name
        return self.pretrained_cfg

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head for `num_classes` outputs (0: no head, forward returns pooled features)."""
        self.num_classes = num_classes
        device = next(self.parameters()).device
        self.classifier = nn.Linear(self.num_features, num_classes).to(device) if num_classes else nn.Identity()
        if isinstance(self.classifier, nn.Linear):
            # Small weights: a new head starts near-uniform instead of confidently wrong
            # (the ImageNet-style init, uniform ±1/√K, gives large logits when K is small).
            nn.init.normal_(self.classifier.weight, std=0.01)
            nn.init.zeros_(self.classifier.bias)
        if self._fine_tune is not None:  # the old class names no longer apply
            self._fine_tune.pop("label_names", None)
        self._refresh_cfg()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def drop_path_rates(self) -> list[float]:
        """The stochastic-depth rate of every block, in order (0 where a block has no skip)."""
        return [b.drop_path.p if b.drop_path is not None else 0.0 for stage in self.stages for b in stage]

    @torch.no_grad()
    def fuse(self) -> EfficientNet:
        """Fold every BatchNorm into the conv before it, for faster inference.

        The result computes the same function in eval mode with fewer ops. It is
        inference-only (there are no BatchNorms left to train), so the model is put in eval
        mode. Combine with `model.to(memory_format=torch.channels_last)` for speed on CPU.
        """
        self.eval()
        for m in self.modules():
            if isinstance(m, ConvBnAct):
                m.fuse()
        return self


def _feature_info(stages, stem_stride: int = 2) -> FeatureInfo:
    """The last stage at each reduction (2, 4, 8, 16, 32): where features_only taps."""
    info: dict[int, dict] = {}
    if stages[0].stride > 1 and stem_stride > 1:  # the stem's output is the only map at its reduction
        info[stem_stride] = dict(num_chs=stages[0].in_channels, reduction=stem_stride, module="stem")
    for s in stages:
        info[s.reduction] = dict(num_chs=s.out_channels, reduction=s.reduction, module=f"stages.{s.index}")
    return FeatureInfo(info[r] for r in sorted(info))


class EfficientNetFeatures(nn.Module):
    """The trunk of an EfficientNet returning a list of feature maps (for detection,
    segmentation, or looking at what each level sees). Keeps the stem and stages only."""

    def __init__(self, model: EfficientNet, out_indices: Sequence[int] | None = None):
        super().__init__()
        levels = len(model.feature_info)
        out_indices = tuple(range(levels)) if out_indices is None else tuple(out_indices)
        bad = [i for i in out_indices if not -levels <= i < levels]
        if bad:
            raise ValueError(f"out_indices {bad} out of range: this model has {levels} feature levels "
                             f"(reductions {model.feature_info.reduction()})")
        self.out_indices = tuple(i % levels for i in out_indices)
        self.feature_info = FeatureInfo(model.feature_info[i] for i in self.out_indices)
        taps = {f["module"] for f in self.feature_info}
        last_stage = max(int(m.split(".")[1]) for m in taps if m.startswith("stages.")) if any(
            m.startswith("stages.") for m in taps) else -1
        self.stem = model.stem
        self.stages = nn.Sequential(*list(model.stages)[: last_stage + 1])
        self._taps = taps
        self.grad_checkpointing = False
        self.pretrained_cfg = ReadOnlyDict(model.pretrained_cfg)
        self.config = model.config

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = [x] if "stem" in self._taps else []
        for i, stage in enumerate(self.stages):
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            if f"stages.{i}" in self._taps:
                features.append(x)
        return features
