"""EfficientNet as data: the paper's Table 1 and the config that scales it. No torch here.

`scaled_stages(config)` turns a config into the concrete per-stage numbers (channels,
repeats, resolution) that `effnet_lab.model.EfficientNet` builds, and that the scaling notebook's
sliders display, without ever creating a tensor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .blocks import block_kind
from .scaling import round_channels, round_repeats


@dataclass(frozen=True)
class StageSpec:
    """One row of Table 1: `repeats` blocks of one kind; only the first block has `stride`."""

    block: str  # a kind of blocks.BLOCK_KINDS: "mbconv" (expand 1 = depthwise-separable) or "fused"
    kernel: int
    stride: int
    expand: int
    channels: int  # output channels, before width scaling
    repeats: int  # blocks, before depth scaling
    se: float = 0.25  # squeeze-excitation ratio; 0 = no SE
    skip: bool = True  # residual connection where shapes allow
    mid_from: int | None = None  # FusedMBConv only: expand from this many channels (TF quirk)
    always_project: bool = False  # FusedMBConv only: a 1×1 projection even at expand 1 (timm's rw_s)

    def __post_init__(self) -> None:
        block_kind(self.block)  # a typo fails here, naming the known kinds


# EfficientNet-B0, Table 1 of the paper. Stage 1 (the 3×3 stem conv, 32 channels) and
# stage 9 (1×1 conv to 1280, pooling, FC) are the stem and head, outside this list.
#          block     kernel stride expand channels repeats   # paper: operator, resolution
B0_STAGES: tuple[StageSpec, ...] = (
    StageSpec("mbconv", 3, 1, 1, 16, 1),    # stage 2: MBConv1, k3x3   112×112
    StageSpec("mbconv", 3, 2, 6, 24, 2),    # stage 3: MBConv6, k3x3   112×112
    StageSpec("mbconv", 5, 2, 6, 40, 2),    # stage 4: MBConv6, k5x5    56×56
    StageSpec("mbconv", 3, 2, 6, 80, 3),    # stage 5: MBConv6, k3x3    28×28
    StageSpec("mbconv", 5, 1, 6, 112, 3),   # stage 6: MBConv6, k5x5    14×14
    StageSpec("mbconv", 5, 2, 6, 192, 4),   # stage 7: MBConv6, k5x5    14×14
    StageSpec("mbconv", 3, 1, 6, 320, 1),   # stage 8: MBConv6, k3x3     7×7
)

# EfficientNet-Lite: B0's table without squeeze-excitation (poorly supported on mobile
# accelerators); the model also swaps SiLU for ReLU6.
LITE_STAGES: tuple[StageSpec, ...] = tuple(replace(s, se=0.0) for s in B0_STAGES)

# EfficientNet-EdgeTPU (es/em/el): fused blocks in the early stages, ReLU, no SE, 6 stages.
EDGE_STAGES: tuple[StageSpec, ...] = (
    StageSpec("fused", 3, 1, 4, 24, 1, se=0.0, skip=False, mid_from=24),
    StageSpec("fused", 3, 2, 8, 32, 2, se=0.0),
    StageSpec("fused", 3, 2, 8, 48, 4, se=0.0),
    StageSpec("mbconv", 5, 2, 8, 96, 5, se=0.0),
    StageSpec("mbconv", 5, 1, 8, 144, 4, se=0.0),
    StageSpec("mbconv", 5, 2, 8, 192, 2, se=0.0),
)


# EfficientNetV2 (Tan & Le 2021, Table 4 for S; M and L as torchvision and timm build them): every
# kernel 3×3; Fused-MBConv without SE in the early, high-resolution stages (its first stage expand 1:
# one 3×3 conv), then MBConv with SE 0.25 and smaller expansion ratios than V1. V2 is not scaled
# by compound multipliers: each size has its own table (non-uniform stage growth), stem 24 (S, M)
# or 32 (L), head 1280.
#          block     kernel stride expand channels repeats  se       # V2 stage (Table 4 numbering)
V2_S_STAGES: tuple[StageSpec, ...] = (
    StageSpec("fused", 3, 1, 1, 24, 2, se=0.0),     # 1: Fused-MBConv1, 24 ch
    StageSpec("fused", 3, 2, 4, 48, 4, se=0.0),     # 2: Fused-MBConv4, 48 ch
    StageSpec("fused", 3, 2, 4, 64, 4, se=0.0),     # 3: Fused-MBConv4, 64 ch
    StageSpec("mbconv", 3, 2, 4, 128, 6),           # 4: MBConv4, SE 0.25, 128 ch
    StageSpec("mbconv", 3, 1, 6, 160, 9),           # 5: MBConv6, SE 0.25, 160 ch
    StageSpec("mbconv", 3, 2, 6, 256, 15),          # 6: MBConv6, SE 0.25, 256 ch
)
V2_M_STAGES: tuple[StageSpec, ...] = (
    StageSpec("fused", 3, 1, 1, 24, 3, se=0.0),
    StageSpec("fused", 3, 2, 4, 48, 5, se=0.0),
    StageSpec("fused", 3, 2, 4, 80, 5, se=0.0),
    StageSpec("mbconv", 3, 2, 4, 160, 7),
    StageSpec("mbconv", 3, 1, 6, 176, 14),
    StageSpec("mbconv", 3, 2, 6, 304, 18),
    StageSpec("mbconv", 3, 1, 6, 512, 5),
)
V2_L_STAGES: tuple[StageSpec, ...] = (
    StageSpec("fused", 3, 1, 1, 32, 4, se=0.0),
    StageSpec("fused", 3, 2, 4, 64, 7, se=0.0),
    StageSpec("fused", 3, 2, 4, 96, 7, se=0.0),
    StageSpec("mbconv", 3, 2, 4, 192, 10),
    StageSpec("mbconv", 3, 1, 6, 224, 19),
    StageSpec("mbconv", 3, 2, 6, 384, 25),
    StageSpec("mbconv", 3, 1, 6, 640, 7),
)

# EfficientNetV2-B0 (the official code's "base" network, scaled to B1-B3 by V1-style multipliers):
# S's pattern with narrower, shallower stages and a 32-channel stem.
V2_BASE_STAGES: tuple[StageSpec, ...] = (
    StageSpec("fused", 3, 1, 1, 16, 1, se=0.0),
    StageSpec("fused", 3, 2, 4, 32, 2, se=0.0),
    StageSpec("fused", 3, 2, 4, 48, 2, se=0.0),
    StageSpec("mbconv", 3, 2, 4, 96, 3),
    StageSpec("mbconv", 3, 1, 6, 112, 5),
    StageSpec("mbconv", 3, 2, 6, 192, 8),
)

# timm's V2-S written before the official code was released (efficientnetv2_rw_s), read from the
# paper's figure: the first stage keeps a 1×1 projection after its 3×3 conv, the last stage is
# 272 channels wide (head 1792). efficientnetv2_rw_t is the official S table at width 0.8, depth 0.9.
V2_RW_S_STAGES: tuple[StageSpec, ...] = (
    StageSpec("fused", 3, 1, 1, 24, 2, se=0.0, always_project=True),
    *V2_S_STAGES[1:-1],
    replace(V2_S_STAGES[-1], channels=272),
)


# "B0 for 28 px", the baseline of the scaling study (notebook 07, Fashion-MNIST): B0's stage
# sequence, kernels, expansion ratios and SE unchanged; stage 3 keeps stride 1, and the stem has
# stride 1 too (B0_28PX below), so a 16-px input still ends on a 2×2 map (total stride 8
# instead of 32). Width and depth 0.25 make every stage one block and ~1.4 M multiply-adds.
#          block     kernel stride expand channels repeats   # B0 (Table 1)
B0_28PX_STAGES: tuple[StageSpec, ...] = (
    StageSpec("mbconv", 3, 1, 1, 16, 1),    # stage 2
    StageSpec("mbconv", 3, 1, 6, 24, 2),    # stage 3: stride 2 → 1
    StageSpec("mbconv", 5, 2, 6, 40, 2),    # stage 4
    StageSpec("mbconv", 3, 2, 6, 80, 3),    # stage 5
    StageSpec("mbconv", 5, 1, 6, 112, 3),   # stage 6
    StageSpec("mbconv", 5, 2, 6, 192, 4),   # stage 7
    StageSpec("mbconv", 3, 1, 6, 320, 1),   # stage 8
)


@dataclass(frozen=True)
class EfficientNetConfig:
    """Everything that decides the architecture of one EfficientNet."""

    stages: tuple[StageSpec, ...] = B0_STAGES
    width: float = 1.0  # channel multiplier
    depth: float = 1.0  # repeats multiplier
    resolution: int = 224  # the input size the model was designed for
    dropout: float = 0.2  # before the classifier
    drop_path_rate: float = 0.0  # stochastic depth: block i of n drops with rate·i/n
    stem_channels: int = 32
    stem_stride: int = 2  # 1 for tiny inputs (the 28-px study baseline keeps the full image)
    head_channels: int = 1280
    act: str = "silu"
    fixed_stem_head: bool = False  # Lite: stem and head keep 32 / 1280 channels at any width
    fixed_first_last_depth: bool = False  # Lite: first and last stage are never repeated more
    bn_eps: float = 1e-5  # TF-trained weights expect 1e-3
    round_limit: float = 0.9  # channel rounding never shrinks below this share (V2-B0..B3: 0)
    tf_same_padding: bool = False  # TF-trained weights expect TF's asymmetric "same" padding

    def scaled(self, **changes) -> EfficientNetConfig:
        return replace(self, **changes)

    @property
    def stem_out(self) -> int:
        if self.fixed_stem_head:
            return self.stem_channels
        return round_channels(self.stem_channels, self.width, round_limit=self.round_limit)

    @property
    def head_out(self) -> int:
        if self.fixed_stem_head:
            return self.head_channels
        return round_channels(self.head_channels, self.width, round_limit=self.round_limit)


# The study's baseline network: 16-px inputs (Fashion-MNIST's 28 px downscaled, so resolution can
# grow to the native size at φ ≈ 4 before any upsampling), stem stride 1, every stage one block.
B0_28PX = EfficientNetConfig(stages=B0_28PX_STAGES, width=0.25, depth=0.25, resolution=16, stem_stride=1,
                             dropout=0.1)


# EfficientNetV2 as configs. S, M and L are tables of their own, evaluated at 384 / 480 / 480 px
# (V2 caps the image size at 480 instead of growing it with every model); B0–B3 are V2-B0's table
# grown by V1's B0–B3 multipliers (RELEASED_V2), channels rounded to the nearest multiple of 8.
V2_B0 = EfficientNetConfig(V2_BASE_STAGES, resolution=224, stem_channels=32, round_limit=0.0)
V2_SIZES: dict[str, EfficientNetConfig] = {
    "s": EfficientNetConfig(V2_S_STAGES, resolution=384, dropout=0.2, stem_channels=24),
    "m": EfficientNetConfig(V2_M_STAGES, resolution=480, dropout=0.3, stem_channels=24),
    "l": EfficientNetConfig(V2_L_STAGES, resolution=480, dropout=0.4, stem_channels=32),
}


def config_to_dict(config: EfficientNetConfig) -> dict:
    """Plain types only (saved inside checkpoints, which are read with weights_only=True)."""
    d = asdict(config)
    d["stages"] = [asdict(s) for s in config.stages]
    return d


def config_from_dict(d: dict) -> EfficientNetConfig:
    known = {k: v for k, v in d.items() if k in EfficientNetConfig.__dataclass_fields__}
    known["stages"] = tuple(StageSpec(**s) for s in known.get("stages", ())) or B0_STAGES
    return EfficientNetConfig(**known)


@dataclass(frozen=True)
class ScaledStage:
    """A stage after compound scaling: the numbers the network is actually built from."""

    index: int
    block: str
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int
    repeats: int
    se: float
    skip: bool
    mid_from: int | None
    always_project: bool
    in_resolution: int  # spatial size entering the stage, for an input of config.resolution
    out_resolution: int
    reduction: int  # input size / output size of this stage

    @property
    def paper_stage(self) -> int:
        """This stage's number in the paper's Table 1, which counts the stem as stage 1:
        `model.stages[i]` is paper stage i + 2 (and the head is stage 9 in B0)."""
        return self.index + 2


def scaled_stages(config: EfficientNetConfig, resolution: int | None = None) -> list[ScaledStage]:
    """Apply width and depth scaling to the stage table; track spatial size and stride."""
    reduction = config.stem_stride
    res = math.ceil((resolution or config.resolution) / reduction)  # after the stem
    in_ch = config.stem_out
    out: list[ScaledStage] = []
    last = len(config.stages) - 1
    for i, s in enumerate(config.stages):
        fixed_depth = config.fixed_first_last_depth and i in (0, last)
        repeats = s.repeats if fixed_depth else round_repeats(s.repeats, config.depth)
        out_ch = round_channels(s.channels, config.width, round_limit=config.round_limit)
        mid_from = round_channels(s.mid_from, config.width) if s.mid_from else None
        out_res = math.ceil(res / s.stride)
        reduction *= s.stride
        out.append(ScaledStage(i, s.block, s.kernel, s.stride, s.expand, in_ch, out_ch, repeats,
                               s.se, s.skip, mid_from, s.always_project, res, out_res, reduction))
        in_ch, res = out_ch, out_res
    return out


def total_blocks(config: EfficientNetConfig) -> int:
    return sum(s.repeats for s in scaled_stages(config))


def drop_path_schedule(config: EfficientNetConfig, rate: float | None = None) -> list[float]:
    """Stochastic-depth rate of every block: grows linearly from 0 (first block) to
    rate·(n−1)/n (last), so deep blocks, whose job is refinement, are dropped most."""
    rate = config.drop_path_rate if rate is None else rate
    n = total_blocks(config)
    return [rate * i / n for i in range(n)]
