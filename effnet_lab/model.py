"""The EfficientNet network: stem → stages of MBConv blocks → head → classifier.

Read top to bottom: `EfficientNet` builds itself from an `EfficientNetConfig`
(architecture.py), block by block, with the drop-path rate growing along the way.
`EfficientNetFeatures` is the same trunk returning one feature map per resolution level
(timm's `features_only`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .architecture import EfficientNetConfig, drop_path_schedule, scaled_stages
from .blocks import ConvBnAct, FusedMBConv, MBConv


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


class EfficientNet(nn.Module):
    def __init__(self, config: EfficientNetConfig, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        opts = dict(bn_eps=config.bn_eps, tf_same_padding=config.tf_same_padding)

        self.stem = ConvBnAct(in_chans, config.stem_out, 3, stride=2, act=config.act, **opts)

        stages = scaled_stages(config)
        rates = iter(drop_path_schedule(config))
        self.stages = nn.Sequential()
        for s in stages:
            blocks = []
            for j in range(s.repeats):
                block_cls = MBConv if s.block == "mbconv" else FusedMBConv
                extra = {"mid_from": s.mid_from} if s.block == "fused" else {}
                blocks.append(block_cls(
                    s.in_channels if j == 0 else s.out_channels, s.out_channels, s.kernel,
                    s.stride if j == 0 else 1, s.expand, se_ratio=s.se, act=config.act,
                    drop_path_rate=next(rates), skip=s.skip, **extra, **opts))
            self.stages.append(nn.Sequential(*blocks))

        self.num_features = config.head_out
        self.head = ConvBnAct(stages[-1].out_channels, self.num_features, 1, act=config.act, **opts)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(config.dropout)
        self.classifier: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

        self.feature_info = _feature_info(stages)
        self.grad_checkpointing = False
        self.pretrained_cfg: dict = {}
        self._init_weights()

    def _init_weights(self) -> None:
        init_weights(self)

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
    def default_cfg(self) -> dict:  # timm's older name
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
        self.pretrained_cfg = {k: v for k, v in self.pretrained_cfg.items() if k != "label_names"}
        self.pretrained_cfg["num_classes"] = num_classes

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


def _feature_info(stages) -> FeatureInfo:
    """The last stage at each reduction (2, 4, 8, 16, 32): where features_only taps."""
    info: dict[int, dict] = {}
    if stages[0].stride > 1:  # the stem's output is the only stride-2 map
        info[2] = dict(num_chs=stages[0].in_channels, reduction=2, module="stem")
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
        self.pretrained_cfg = dict(model.pretrained_cfg)
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
