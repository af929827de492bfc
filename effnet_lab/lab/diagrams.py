"""Block diagrams drawn from built blocks, not by hand.

`block_parts` walks a built MBConv or FusedMBConv part by part (its `parts()`, in forward order),
runs it once on an input, and records for each part what it is (kernel, depthwise or full,
channels, stride, activation), its output shape, its parameters and the multiply-adds torch's
FlopCounterMode counts for it. `draw_block` draws that list as a column of boxes with the skip
connection beside it, so the picture changes when the block does.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..model.blocks import ConvBnAct, SqueezeExcite
from .measure import count_params

# the explorer's colours (lab/widgets.py): a depthwise k×k is MBConv's, a full k×k is Fused-MBConv's
_COLOURS = {"depthwise": "#4c78a8", "full": "#54a24b", "pointwise": "#c7c7c7", "se": "#f58518"}


@dataclass(frozen=True)
class Part:
    name: str  # the block's attribute: expand, depthwise, se, project
    kind: str  # "depthwise", "full" (a dense k×k conv), "pointwise" (1×1) or "se"
    label: str  # what it computes, e.g. "3×3 depthwise conv, stride 2"
    channels: str  # "96 → 96"
    act: str  # the activation after it ("none" for the linear projection)
    out_shape: tuple[int, ...]  # (C, H, W) of its output
    params: int
    macs: int  # multiply-adds of one image, counted by FlopCounterMode


def _describe(module: nn.Module) -> tuple[str, str, str, str]:
    if isinstance(module, SqueezeExcite):
        c, s = module.reduce.in_channels, module.reduce.out_channels
        return "se", "squeeze-excitation", f"{c} → {s} → {c}", "gate ×"
    if not isinstance(module, ConvBnAct):
        raise TypeError(f"cannot draw a part of type {type(module).__name__}")
    conv = module.conv
    k, stride = conv.kernel_size[0], conv.stride[0]
    if k == 1:
        kind, what = "pointwise", "1×1 conv"
    elif conv.groups == conv.in_channels and conv.groups > 1:
        kind, what = "depthwise", f"{k}×{k} depthwise conv"
    else:
        kind, what = "full", f"{k}×{k} conv (full)"
    if stride > 1:
        what += f", stride {stride}"
    act = "none (linear)" if isinstance(module.act, nn.Identity) else type(module.act).__name__
    return kind, what, f"{conv.in_channels} → {conv.out_channels}", act


def block_parts(block: nn.Module, in_channels: int, resolution: int) -> list[Part]:
    """Each part of `block` (an MBConv or FusedMBConv: anything with `parts()`), measured on one
    image of `in_channels` × `resolution` × `resolution` in eval mode."""
    names = block.parts()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [getattr(block, n).register_forward_hook(
        lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:]))) for n in names]
    counter = FlopCounterMode(display=False)
    was_training = block.training
    try:
        block.eval()
        with counter, torch.no_grad():
            block(torch.zeros(1, in_channels, resolution, resolution))
    finally:
        block.train(was_training)
        for h in hooks:
            h.remove()
    flops = {fqn.split(".", 1)[1]: sum(v.values()) for fqn, v in counter.get_flop_counts().items() if "." in fqn}
    parts = []
    for n in names:
        kind, label, channels, act = _describe(getattr(block, n))
        parts.append(Part(n, kind, label, channels, act, shapes[n], count_params(getattr(block, n)),
                          flops.get(n, 0) // 2))
    return parts


def draw_block(block: nn.Module, in_channels: int, resolution: int, ax=None, title: str | None = None):
    """Draw `block` as its parts top to bottom, each box with its channels, activation, parameters
    and multiply-adds; the skip connection (when the block has one) on the right. Returns the axes."""
    parts = block_parts(block, in_channels, resolution)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 5.4))
    ax.set_axis_off()
    top = 5  # the input's row; at most four parts follow (MBConv with expansion and SE), then the output
    bottom = top - len(parts) - 1
    ax.set_xlim(-0.05, 1.2)
    ax.set_ylim(-0.6, top + 0.6)
    ax.text(0.5, top, f"input {in_channels} × {resolution} × {resolution}", ha="center", va="center", fontsize=8.5)
    previous = top + 0.18  # the bottom of what the next arrow starts from
    for i, p in enumerate(parts):
        y = top - 1 - i
        ax.add_patch(FancyBboxPatch((0.05, y - 0.36), 0.9, 0.72, boxstyle="round,pad=0.02",
                                    facecolor=_COLOURS[p.kind], edgecolor="black", linewidth=0.6, alpha=0.85))
        colour = "white" if p.kind in ("depthwise", "full") else "black"
        ax.text(0.5, y + 0.16, f"{p.label}   {p.channels}", ha="center", va="center", fontsize=8.5,
                color=colour, weight="bold")
        ax.text(0.5, y - 0.15, f"act: {p.act}  ·  {p.params:,} params  ·  {_macs(p.macs)}",
                ha="center", va="center", fontsize=7.5, color=colour)
        ax.annotate("", (0.5, y + 0.39), (0.5, previous - 0.36), arrowprops=dict(arrowstyle="->", lw=0.8))
        previous = y
    c, h, w = parts[-1].out_shape
    out_text = f"output {c} × {h} × {w}"
    if getattr(block, "has_skip", False):  # input → right edge → down → into the sum
        ax.plot([0.82, 1.03, 1.03], [top, top, bottom], color="#444444", lw=0.9)
        ax.annotate("", (0.8, bottom), (1.03, bottom), arrowprops=dict(arrowstyle="->", lw=0.9, color="#444444"))
        ax.text(1.08, (top + bottom) / 2, "skip", rotation=90, ha="center", va="center", fontsize=8,
                color="#444444")
        out_text = "(+)  " + out_text
    ax.annotate("", (0.5, bottom + 0.2), (0.5, previous - 0.38), arrowprops=dict(arrowstyle="->", lw=0.8))
    ax.text(0.5, bottom, out_text, ha="center", va="center", fontsize=8.5)
    total_params = sum(p.params for p in parts)
    total_macs = sum(p.macs for p in parts)
    ax.set_title(f"{title or type(block).__name__}\n{total_params:,} params · {total_macs / 1e6:.1f} M MACs",
                 fontsize=9.5)
    return ax


def _macs(macs: int) -> str:
    return f"{macs / 1e6:.2f} M MACs" if macs >= 100_000 else f"{macs / 1e3:.1f} k MACs"
