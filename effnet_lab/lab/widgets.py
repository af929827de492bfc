"""The live compound-scaling explorer of notebook 03 (a UI leaf: the core never imports it).

    from effnet_lab.lab.widgets import scaling_explorer
    explorer = scaling_explorer()      # display it: the last expression of a cell
    explorer.phi.value = 3.0           # or drive it from code

Controls
    φ slider (description "φ")        moving it sets width = β^φ, depth = α^φ and resolution =
                                      224·γ^φ rounded to a multiple of 8 (`compound_multipliers`)
    width / depth / resolution        moving one by hand *detaches* the network from φ: the
                                      mode line and the dropdown then say "custom"
    dropdown                          "pure rule (follow φ)" re-attaches to φ; "B0 … B7
                                      (released)" jumps to the released multipliers
    family                            EfficientNet (B0's table) or EfficientNetV2: φ and the
                                      sliders then scale V2-B0's table (resolution capped at
                                      480 px), the dropdown offers V2-B0 … B3 (V1's multipliers
                                      on V2-B0) and V2-S / M / L, tables of their own

Every move recomputes, with `effnet_lab.paper.cost` (no torch, ~1 ms): the per-stage table, the
parameter count, the FLOPs (multiply-adds, the paper's and torchvision's convention),
the activation memory (fp32 output of every conv/linear layer for one image), an SVG
diagram of the network and the current point on the FLOPs-vs-params plane of B0–B7.
Nothing is printed: only `HTML` widget values change, so a notebook cell's saved output
is the same every run (nbval has no widget manager and would see printed text).

DOM hooks (for browser tests): CSS classes added to the widgets with `add_class`

    effnet-explorer             the whole explorer (a VBox)
    effnet-phi-slider           the φ FloatSlider (description "φ", range −2 … 8, step 0.1)
    effnet-width-slider         width FloatSlider (0.5 … 3.0, step 0.05, readout 3 decimals)
    effnet-depth-slider         depth FloatSlider (0.5 … 4.5, step 0.05, readout 3 decimals)
    effnet-resolution-slider    resolution IntSlider (96 … 800 px, step 4)
    effnet-preset               the Dropdown (values "phi", "b0" … "b7", "custom"; V2: "b0" … "b3", "s", "m", "l")
    effnet-family               the family Dropdown (values "v1", "v2")
    effnet-mode                 HTML: "following φ = …", "released B3 …" or "custom …";
                                an inner <span class="effnet-mode-value" data-value="phi|b3|custom">
    effnet-params, effnet-flops, effnet-memory, effnet-resolution
                                HTML widgets, each holding one
                                <span class="effnet-value" data-value="RAW">TEXT</span>:
                                params:     RAW = exact integer,    TEXT = "5,288,548"
                                flops:      RAW = exact MACs (int), TEXT = "0.386" (GFLOPs)
                                memory:     RAW = bytes (int),      TEXT = "27.0" (MB, 10⁶ B)
                                resolution: RAW = pixels (int),     TEXT = "224"
    effnet-table                HTML <table class="effnet-stage-table">, one <tr data-stage="stem|stage 2|…|head|
                                classifier"> per row
    effnet-diagram              HTML with an inline <svg class="effnet-diagram-svg">
    effnet-curve                HTML with an inline <svg class="effnet-curve-svg">; the current point
                                is <circle class="effnet-current" data-params=… data-macs=…>

A browser test reads e.g. `.effnet-params .effnet-value` → attribute `data-value`.
`scaling_report(width, depth, resolution)` and `render_report(report)` are the pure
functions the widget calls, for tests without a browser.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import ipywidgets as widgets

from ..paper.architecture import B0_STAGES, V2_B0, V2_SIZES, EfficientNetConfig
from ..paper.cost import count_cost
from ..paper.scaling import (
    ALPHA,
    BETA,
    GAMMA,
    RELEASED,
    RELEASED_V2,
    V2_MAX_RESOLUTION,
    Multipliers,
    compound_multipliers,
    implied_phi,
)

ECHO_WINDOW_S = 2.0  # how long after we set a slider its rounded echo from the browser is expected

PHI_RANGE = (-2.0, 8.0, 0.1)  # min, max, step
WIDTH_RANGE = (0.5, 3.0, 0.05)
DEPTH_RANGE = (0.5, 4.5, 0.05)
RESOLUTION_RANGE = (96, 800, 4)  # step 4: every released size (260, 380, …) is reachable

_KERNEL_COLOURS = {3: "#4c78a8", 5: "#f58518"}
_FUSED_COLOUR = "#54a24b"  # FusedMBConv (EdgeTPU, EfficientNetV2's early stages)
_OTHER_COLOUR = "#9d9d9d"
_V2_COLOUR = "#e45756"


@dataclass(frozen=True)
class Family:
    """What the explorer scales: a base table (φ and the width / depth sliders grow it), the
    released multipliers of that base, and released networks that are tables of their own."""

    label: str
    base: EfficientNetConfig
    released: dict[str, Multipliers]
    tables: dict[str, EfficientNetConfig] = field(default_factory=dict)
    max_resolution: int | None = None  # V2 caps the image size
    prefix: str = ""  # "V2-" in names shown

    def name(self, key: str) -> str:
        return f"{self.prefix}{key.upper()}"


FAMILIES: dict[str, Family] = {
    "v1": Family("EfficientNet (B0's table)", EfficientNetConfig(B0_STAGES), RELEASED),
    "v2": Family("EfficientNetV2 (V2-B0's table)", V2_B0, RELEASED_V2, V2_SIZES, V2_MAX_RESOLUTION, "V2-"),
}


# ------------------------------------------------------------------------------ pure functions
def scaling_report(width: float, depth: float, resolution: int,
                   base: EfficientNetConfig | None = None) -> dict[str, Any]:
    """The numbers the explorer shows for B0's table (or `base`) scaled by width and depth,
    at `resolution`. Exact for `EfficientNet(config)` with the returned `config`."""
    base = base or EfficientNetConfig(B0_STAGES)
    config = base.scaled(width=float(width), depth=float(depth), resolution=int(resolution))
    cost = count_cost(config)
    rows = [dict(name=s.name, block=s.block, kernel=s.kernel, stride=s.stride, channels=s.out_channels,
                 repeats=s.repeats, in_resolution=s.in_resolution, out_resolution=s.out_resolution,
                 params=s.params, macs=s.macs, activations=s.activations) for s in cost.stages]
    return dict(width=float(width), depth=float(depth), resolution=int(resolution), config=config,
                params=cost.params, macs=cost.macs, gflops=cost.gmacs, activation_mb=cost.activation_mb,
                activation_bytes=cost.activations * 4, stages=rows)


def _value_span(raw: int | str, text: str, unit: str) -> str:
    return f'<span class="effnet-value" data-value="{raw}">{text}</span> {unit}'


def render_report(report: dict[str, Any], family: str = "v1") -> dict[str, str]:
    """HTML for each display widget: keys params, flops, memory, resolution, table, diagram, curve
    (whose released points and φ curve are `family`'s)."""
    p = report["params"]
    return dict(
        params=_value_span(p, f"{p:,}", f"parameters ({p / 1e6:.2f} M)"),
        flops=_value_span(report["macs"], f"{report['gflops']:.3f}", "GFLOPs (multiply-adds)"),
        memory=_value_span(report["activation_bytes"], f"{report['activation_mb']:.1f}",
                           "MB of activations (fp32, one image)"),
        resolution=_value_span(report["resolution"], str(report["resolution"]), "px input"),
        table=render_table(report),
        diagram=render_diagram(report),
        curve=render_curve(report, family),
    )


def render_table(report: dict[str, Any]) -> str:
    """The per-stage table as HTML."""
    head = ("stage", "block", "kernel", "stride", "channels", "repeats", "resolution", "params", "MFLOPs")
    cells = "".join(f"<th>{h}</th>" for h in head)
    out = [f'<table class="effnet-stage-table" style="border-collapse:collapse;font-size:12px">'
           f"<thead><tr>{cells}</tr></thead><tbody>"]
    for r in report["stages"]:
        res = f"{r['in_resolution']}→{r['out_resolution']}"
        kernel = f"{r['kernel']}×{r['kernel']}" if r["name"] != "classifier" else "–"
        values = (r["name"], r["block"], kernel, r["stride"], r["channels"], r["repeats"], res,
                  f"{r['params']:,}", f"{r['macs'] / 1e6:,.1f}")
        tds = "".join(f'<td style="padding:1px 6px;text-align:right">{html.escape(str(v))}</td>' for v in values)
        out.append(f'<tr data-stage="{r["name"]}">{tds}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


# The diagram keeps one fixed scale for every setting, so growing the network visibly
# lengthens it (depth: one box per block) and thickens it (width: box height ∝ √channels).
_BLOCK_W, _MIN_STAGE_W, _GAP, _PAD = 9, 26, 6, 6
_H_PER_SQRT_CH = 2.2


@lru_cache(maxsize=1)
def _diagram_size() -> tuple[int, int]:
    """Width and height that fit the largest network the sliders allow."""
    big = scaling_report(WIDTH_RANGE[1], DEPTH_RANGE[1], RESOLUTION_RANGE[1])
    return _diagram_width(big["stages"]), int(_H_PER_SQRT_CH * math.sqrt(max(
        r["channels"] for r in big["stages"][:-1]))) + 44


def _stage_width(r: dict[str, Any], block_w: float = _BLOCK_W) -> float:
    return max(_MIN_STAGE_W, r["repeats"] * block_w)


def _diagram_width(rows: list[dict[str, Any]], block_w: float = _BLOCK_W) -> float:
    return 2 * _PAD + sum(_stage_width(r, block_w) + _GAP for r in rows[:-1])


def _block_colour(r: dict[str, Any]) -> str:
    if not r["name"].startswith("stage"):
        return _OTHER_COLOUR
    return _FUSED_COLOUR if r["block"].startswith("Fused") else _KERNEL_COLOURS.get(r["kernel"], _OTHER_COLOUR)


def render_diagram(report: dict[str, Any]) -> str:
    """An SVG: one box per block (stem, each MBConv, head); height ∝ √channels; colour =
    kernel size (green: FusedMBConv); under each stage its repeats and output resolution. A
    network too long for the frame (V2-L's table deepened) gets narrower boxes."""
    width, height = _diagram_size()
    block_w = float(_BLOCK_W)
    while _diagram_width(report["stages"], block_w) > width and block_w > 1:
        block_w *= 0.9
    base_y = height - 30  # boxes stand on this line; labels go below
    parts = [f'<svg class="effnet-diagram-svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="9">']
    x = _PAD
    for r in report["stages"][:-1]:  # the classifier (pool + fc) has no spatial map to draw
        h = max(2.0, _H_PER_SQRT_CH * math.sqrt(r["channels"]))
        colour = _block_colour(r)
        for j in range(r["repeats"]):
            parts.append(f'<rect x="{x + j * block_w:.1f}" y="{base_y - h:.1f}" width="{max(block_w - 1, 0.5):.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{r["name"]} block {j + 1}: {r["block"]}, '
                         f'{r["channels"]} ch, {r["out_resolution"]}²</title></rect>')
        label = r["name"].replace("stage ", "s")
        mid = x + _stage_width(r, block_w) / 2
        parts.append(f'<text x="{mid:.1f}" y="{base_y + 11}" text-anchor="middle">{label}×{r["repeats"]}</text>')
        parts.append(f'<text x="{mid:.1f}" y="{base_y + 22}" text-anchor="middle" fill="#555">'
                     f'{r["out_resolution"]}²</text>')
        x += _stage_width(r, block_w) + _GAP
    parts.append(f'<text x="{_PAD}" y="11" fill="#333">box height ∝ √channels, one box per block; '
                 f'<tspan fill="{_KERNEL_COLOURS[3]}">■ k3</tspan> <tspan fill="{_KERNEL_COLOURS[5]}">■ k5</tspan> '
                 f'<tspan fill="{_FUSED_COLOUR}">■ fused</tspan> '
                 f'<tspan fill="{_OTHER_COLOUR}">■ stem/head</tspan>; under each stage: repeats, output size</text>')
    parts.append("</svg>")
    return "".join(parts)


# FLOPs-vs-params plane, log-log; the static part (axes, released points, the φ curve) is built once
# per family. One frame for both families, so switching family does not move the axes.
_CW, _CH, _CL, _CB, _CT, _CR = 360, 260, 44, 34, 10, 10  # size and left/bottom/top/right margins


def _released_points(family: Family) -> list[tuple[str, dict[str, Any]]]:
    """(name, report) of every released network of the family: multipliers of its base, then tables."""
    pts = [(family.name(k), scaling_report(m.width, m.depth, m.resolution, family.base))
           for k, m in family.released.items()]
    pts += [(family.name(k), scaling_report(1.0, 1.0, t.resolution, t)) for k, t in family.tables.items()]
    return pts


def _phi_multipliers(phi: float, family: Family) -> Multipliers:
    """The pure rule at φ; V2 caps the resolution."""
    m = compound_multipliers(phi)
    if family.max_resolution and m.resolution > family.max_resolution:
        m = Multipliers(m.width, m.depth, family.max_resolution)
    return m


@lru_cache(maxsize=1)
def _curve_axes() -> tuple[int, int, int, int]:
    """log10 ranges (params in M, GFLOPs): whole decades around every released network. Settings
    outside (extreme sliders) are pinned to the frame and drawn hollow."""
    pts = [r for f in FAMILIES.values() for _, r in _released_points(f)]
    return (math.floor(math.log10(min(r["params"] for r in pts) / 1e6)),
            math.ceil(math.log10(max(r["params"] for r in pts) / 1e6)),
            math.floor(math.log10(min(r["gflops"] for r in pts))),
            math.ceil(math.log10(max(r["gflops"] for r in pts))))


def _xy(params: int, gflops: float) -> tuple[float, float, bool]:
    """SVG coordinates of a point, and whether it lies inside the axes (else it is pinned)."""
    x0, x1, y0, y1 = _curve_axes()
    fx = (math.log10(params / 1e6) - x0) / (x1 - x0)
    fy = (math.log10(max(gflops, 1e-9)) - y0) / (y1 - y0)
    inside = 0 <= fx <= 1 and 0 <= fy <= 1
    fx, fy = min(max(fx, 0.0), 1.0), min(max(fy, 0.0), 1.0)
    return _CL + fx * (_CW - _CL - _CR), _CH - _CB - fy * (_CH - _CB - _CT), inside


def _points_svg(family: Family, colour: str, below: bool = False) -> list[str]:
    """Each released network of `family` as a dot and its name: above left, or below right (V2's,
    so that they do not sit on V1's labels nearby)."""
    out = []
    for name, r in _released_points(family):
        x, y, _ = _xy(r["params"], r["gflops"])
        label = name.replace("V2-", "")
        tx, ty, anchor = (x + 5, y + 11, "start") if below else (x - 5, y - 5, "end")
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                   f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" fill="{colour}">{label}</text>')
    return out


@lru_cache(maxsize=2)
def _curve_static(family_key: str = "v1") -> str:
    family = FAMILIES[family_key]
    x0, x1, y0, y1 = _curve_axes()
    out = [f'<svg class="effnet-curve-svg" viewBox="0 0 {_CW} {_CH}" width="{_CW}" height="{_CH}" '
           'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="9">',
           f'<rect x="{_CL}" y="{_CT}" width="{_CW - _CL - _CR}" height="{_CH - _CB - _CT}" '
           'fill="none" stroke="#999"/>']
    for e in range(x0, x1 + 1):
        x, _, _ = _xy(10**e * 1e6, 10**y0)
        anchor = "end" if e == x1 else "middle"  # the last label would run past the frame's right edge
        out.append(f'<line x1="{x:.1f}" y1="{_CT}" x2="{x:.1f}" y2="{_CH - _CB}" stroke="#eee"/>'
                   f'<text x="{x:.1f}" y="{_CH - _CB + 11}" text-anchor="{anchor}">{10**e:g}M</text>')
    for e in range(y0, y1 + 1):
        _, y, _ = _xy(10**x0 * 1e6, 10**e)
        out.append(f'<line x1="{_CL}" y1="{y:.1f}" x2="{_CW - _CR}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{_CL - 3}" y="{y + 3:.1f}" text-anchor="end">{10**e:g}</text>')
    out.append(f'<text x="{(_CL + _CW) / 2}" y="{_CH - 4}" text-anchor="middle">parameters</text>'
               f'<text x="10" y="{(_CT + _CH - _CB) / 2}" transform="rotate(-90 10 {(_CT + _CH - _CB) / 2})" '
               'text-anchor="middle">GFLOPs (multiply-adds)</text>')
    # the pure rule on this family's base, φ = −2 … 8
    pts = []
    for i in range(0, 101):
        phi = PHI_RANGE[0] + i * (PHI_RANGE[1] - PHI_RANGE[0]) / 100
        m = _phi_multipliers(phi, family)
        r = scaling_report(m.width, m.depth, m.resolution, family.base)
        x, y, inside = _xy(r["params"], r["gflops"])
        if inside:
            pts.append(f"{x:.1f},{y:.1f}")
    out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#888" stroke-dasharray="3,2"/>')
    out += _points_svg(FAMILIES["v1"], "#4c78a8")
    legend = [("#4c78a8", "● released B0–B7")]
    if family_key == "v2":
        out += _points_svg(family, _V2_COLOUR, below=True)
        legend.append((_V2_COLOUR, "● released V2-B0…B3, V2-S/M/L"))
    rule = f"- - pure rule on {'V2-B0' if family_key == 'v2' else 'B0'}, φ = {PHI_RANGE[0]:g} … {PHI_RANGE[1]:g}"
    legend += [("#888", rule), ("#d62728", "● this network")]
    out += [f'<text x="{_CL + 6}" y="{_CT + 12 * (i + 1)}" fill="{c}">{t}</text>' for i, (c, t) in enumerate(legend)]
    return "".join(out)


def render_curve(report: dict[str, Any], family_key: str = "v1") -> str:
    """The FLOPs-vs-params plane with the released networks, the pure-rule curve and the current one."""
    x, y, inside = _xy(report["params"], report["gflops"])
    fill = 'fill="#d62728"' if inside else 'fill="white" stroke="#d62728" stroke-width="2"'  # hollow: off the axes
    return (_curve_static(family_key) + f'<circle class="effnet-current" cx="{x:.1f}" cy="{y:.1f}" r="5" {fill} '
            f'data-params="{report["params"]}" data-macs="{report["macs"]}"/></svg>')


# ------------------------------------------------------------------------------ the widget
def _preset_options(family: Family) -> list[tuple[str, str]]:
    released = [(f"{family.name(k)} (released)", k) for k in family.released]
    tables = [(f"{family.name(k)} (its own table)", k) for k in family.tables]
    return [("pure rule: follow φ", "phi"), *released, *tables, ("custom (detached from φ)", "custom")]


_FAMILY_OPTIONS = [("EfficientNet (V1)", "v1"), ("EfficientNetV2", "v2")]


class ScalingExplorer:
    """φ, width, depth and resolution sliders driving a live cost table, diagram and plot.

    `widget` is the VBox to display (displaying the explorer itself does the same);
    `report` is the latest `scaling_report`; `mode` is "phi", a released key ("b3", V2's "s") or
    "custom"; `family` is "v1" or "v2" (`set_family`), `base` the table being scaled.
    """

    def __init__(self, phi: float = 0.0, base: EfficientNetConfig | None = None):
        self.families = dict(FAMILIES)
        if base is not None:  # a table of your own in place of B0's
            self.families["v1"] = Family("your table", base, RELEASED)
        self.family = "v1"
        self.base = self.families["v1"].base
        self.mode = "phi"
        self._syncing = False  # True while *we* move sliders, so observers ignore those moves
        # What the explorer shows: set by φ, a preset or a manual move — not read back from the
        # sliders, whose values a browser may round to the slider step.
        self.current: tuple[float, float, int] = (1.0, 1.0, 224)
        self._recent: dict[str, list[tuple[float, float]]] = {"width": [], "depth": [], "resolution": []}
        self.report: dict[str, Any] = {}

        def slider(cls, rng, desc, value, css, fmt=None):
            kw = dict(min=rng[0], max=rng[1], step=rng[2], value=value, description=desc, continuous_update=True,
                      layout=widgets.Layout(width="440px"), style={"description_width": "100px"})
            if fmt:
                kw["readout_format"] = fmt
            w = cls(**kw)
            w.add_class(css)
            return w

        self.phi = slider(widgets.FloatSlider, PHI_RANGE, "φ", phi, "effnet-phi-slider", ".1f")
        self.width = slider(widgets.FloatSlider, WIDTH_RANGE, "width (β^φ)", 1.0, "effnet-width-slider", ".3f")
        self.depth = slider(widgets.FloatSlider, DEPTH_RANGE, "depth (α^φ)", 1.0, "effnet-depth-slider", ".3f")
        self.resolution = slider(widgets.IntSlider, RESOLUTION_RANGE, "resolution", 224, "effnet-resolution-slider")
        self.family_choice = widgets.Dropdown(options=_FAMILY_OPTIONS, value="v1", description="family",
                                              style={"description_width": "80px"},
                                              layout=widgets.Layout(width="260px"))
        self.family_choice.add_class("effnet-family")
        self.preset = widgets.Dropdown(options=_preset_options(self.families["v1"]), value="phi",
                                       description="network", style={"description_width": "80px"},
                                       layout=widgets.Layout(width="320px"))
        self.preset.add_class("effnet-preset")
        self.mode_html = self._html("effnet-mode")
        self.params_html = self._html("effnet-params")
        self.flops_html = self._html("effnet-flops")
        self.memory_html = self._html("effnet-memory")
        self.resolution_html = self._html("effnet-resolution")
        self.table = self._html("effnet-table")
        self.diagram = self._html("effnet-diagram")
        self.curve = self._html("effnet-curve")

        numbers = widgets.VBox([self.params_html, self.flops_html, self.memory_html, self.resolution_html])
        self.widget = widgets.VBox([
            widgets.HBox([self.family_choice, self.preset, self.phi]),
            self.mode_html,
            widgets.HBox([widgets.VBox([self.width, self.depth, self.resolution]), numbers]),
            self.diagram,
            widgets.HBox([self.table, self.curve]),
        ])
        self.widget.add_class("effnet-explorer")

        self.phi.observe(self._on_phi, "value")
        for w in (self.width, self.depth, self.resolution):
            w.observe(self._on_manual, "value")
        self.preset.observe(self._on_preset, "value")
        self.family_choice.observe(self._on_family, "value")
        self.set_phi(phi)

    @staticmethod
    def _html(css: str) -> widgets.HTML:
        w = widgets.HTML()
        w.add_class(css)
        return w

    @property
    def _family(self) -> Family:
        return self.families[self.family]

    # -- programmatic control (what the observers call) -------------------------------------
    def set_family(self, key: str) -> dict[str, Any]:
        """Switch between EfficientNet ("v1": B0's table) and EfficientNetV2 ("v2": V2-B0's table,
        its released B0–B3, and S/M/L, tables of their own); the network follows φ again."""
        if key not in self.families:
            raise ValueError(f"family must be one of {sorted(self.families)}, got {key!r}")
        self.family = key
        self._syncing = True
        try:
            self.family_choice.value = key
            self.preset.options = _preset_options(self._family)
        finally:
            self._syncing = False
        return self.set_phi(self.phi.value)

    def set_phi(self, phi: float) -> dict[str, Any]:
        """Follow the pure rule at φ: width β^φ, depth α^φ, resolution 224·γ^φ (to 8 px; V2: at
        most 480), applied to the family's base table."""
        m = _phi_multipliers(phi, self._family)
        self.mode, self.base = "phi", self._family.base
        self._set(phi=phi, width=m.width, depth=m.depth, resolution=m.resolution, preset="phi")
        return self.update()

    def set_preset(self, key: str) -> dict[str, Any]:
        """Jump to a released model: multipliers of the base ("b0" … "b7"; V2: "b0" … "b3"), or a
        table of its own (V2: "s", "m", "l"); φ no longer drives it."""
        family = self._family
        if key in family.tables:
            table = family.tables[key]
            self.base, width, depth, resolution = table, 1.0, 1.0, table.resolution
        elif key in family.released:
            m = family.released[key]
            self.base, width, depth, resolution = family.base, m.width, m.depth, m.resolution
        else:
            raise ValueError(f"{key!r} is not a released {family.label} network: choose one of "
                             f"{sorted([*family.released, *family.tables])}")
        self.mode = key
        self._set(width=width, depth=depth, resolution=resolution, preset=key)
        return self.update()

    def set_multipliers(self, width: float, depth: float, resolution: int) -> dict[str, Any]:
        """Set the three by hand (detached from φ), scaling the table shown now."""
        self.mode = "custom"
        self._set(width=width, depth=depth, resolution=resolution, preset="custom")
        return self.update()

    def _set(self, **values: Any) -> None:
        if {"width", "depth", "resolution"} <= values.keys():
            self.current = (values["width"], values["depth"], values["resolution"])
        now = time.monotonic()
        self._syncing = True
        try:
            for name, v in values.items():
                if name in self._recent:
                    self._recent[name] = [*self._recent[name][-7:], (v, now)]
                getattr(self, name).value = v
        finally:
            self._syncing = False

    # -- observers ----------------------------------------------------------------------------
    def _on_phi(self, change: dict) -> None:
        if not self._syncing:
            self.set_phi(change["new"])

    def _on_family(self, change: dict) -> None:
        if not self._syncing:
            self.set_family(change["new"])

    def _on_preset(self, change: dict) -> None:
        if self._syncing:
            return
        if change["new"] == "phi":
            self.set_phi(self.phi.value)  # re-attach to φ
        elif change["new"] in (*self._family.released, *self._family.tables):
            self.set_preset(change["new"])
        else:
            self.mode = "custom"
            self.update()

    def _on_manual(self, change: dict) -> None:
        if self._syncing:
            return
        owner = change["owner"]
        name = next(n for n in self._recent if getattr(self, n) is owner)
        # A browser echoes back, a moment later, the values we set, rounded to the slider's
        # step (sometimes an older one after a newer one): those are not user moves.
        now = time.monotonic()
        if any(abs(change["new"] - v) <= owner.step / 2 + 1e-9 and now - t < ECHO_WINDOW_S
               for v, t in self._recent[name]):
            latest = self._recent[name][-1][0]
            if abs(change["new"] - latest) > owner.step / 2 + 1e-9:
                # a stale echo (of a value set before the latest) moved the slider off the network
                # shown: put it back, so the readout agrees with the counts
                self._syncing = True
                try:
                    owner.value = latest
                finally:
                    self._syncing = False
            return
        self.mode = "custom"
        self.current = (self.width.value, self.depth.value, self.resolution.value)
        self._set(preset="custom")
        self.update()

    # -- the update callback ----------------------------------------------------------------
    def update(self) -> dict[str, Any]:
        """Recompute from the slider values and refresh every display widget (no printing)."""
        report = scaling_report(*self.current, self.base)
        shown = render_report(report, self.family)
        self.mode_html.value = self._mode_text()
        self.params_html.value = shown["params"]
        self.flops_html.value = shown["flops"]
        self.memory_html.value = shown["memory"]
        self.resolution_html.value = shown["resolution"]
        self.table.value = shown["table"]
        self.diagram.value = shown["diagram"]
        self.curve.value = shown["curve"]
        self.report = report
        return report

    def _mode_text(self) -> str:
        span = f'<span class="effnet-mode-value" data-value="{self.mode}">'
        family = self._family
        if self.mode == "phi":
            phi = self.phi.value
            base = "V2-B0's table" if self.family == "v2" else "B0's table"
            capped = (f", capped at {family.max_resolution} px as EfficientNetV2 caps it"
                      if family.max_resolution and 224 * GAMMA**phi > family.max_resolution else "")
            return (f"{span}<b>following φ = {phi:.1f}</b></span> on {base}: depth α^φ = {ALPHA}^{phi:.1f} = "
                    f"{ALPHA**phi:.3f}, width β^φ = {BETA}^{phi:.1f} = {BETA**phi:.3f}, resolution "
                    f"224·γ^φ = 224·{GAMMA}^{phi:.1f} = {224 * GAMMA**phi:.1f} → {self.resolution.value} px{capped} "
                    f"(FLOPs ≈ {ALPHA * BETA**2 * GAMMA**2:.2f}^φ × the base's; the sliders show these values "
                    f"to their 0.05 step, the counts use them exactly)")
        if self.mode in family.tables:
            t = family.tables[self.mode]
            source = "the V2 paper's Table 4" if self.mode == "s" else "as torchvision and timm build it"
            return (f"{span}<b>released {family.name(self.mode)}</b></span>: a stage table of its own ({source}), "
                    f"not V2-B0 times multipliers: S → M → L add most of their layers to the late stages and a "
                    f"new last stage (non-uniform scaling), evaluated at {t.resolution} px. The sliders now scale "
                    "this table; choose “pure rule” to go back to V2-B0.")
        if self.mode in family.released:
            m = family.released[self.mode]
            ph = implied_phi(m)
            reuse = " V1's multipliers for this size, on V2-B0's table:" if self.family == "v2" else ""
            return (f"{span}<b>released {family.name(self.mode)}</b></span>:{reuse} width {m.width}, depth {m.depth}, "
                    f"{m.resolution} px, hand-rounded, not the pure rule: their implied φ are depth "
                    f"{ph['depth']:.2f}, width {ph['width']:.2f}, resolution {ph['resolution']:.2f}. "
                    "The φ slider is detached; choose “pure rule” to follow it again.")
        return (f"{span}<b>custom</b></span>: width, depth and resolution set by hand, detached from φ. "
                "Choose “pure rule” in the dropdown (or move φ) to follow φ again.")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        if hasattr(self.widget, "_repr_mimebundle_"):  # ipywidgets 8
            bundle = self.widget._repr_mimebundle_(**kwargs)
        else:  # ipywidgets 7 (Colab ships 7.7) displays through _ipython_display_; the view is the same
            bundle = {"application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}}
        # A short, deterministic text/plain instead of the VBox's huge repr (nbval compares it).
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        r = self.report
        family = ", family=v2" if self.family == "v2" else ""
        return (f"ScalingExplorer(mode={self.mode}{family}, width={r['width']:.3f}, depth={r['depth']:.3f}, "
                f"resolution={r['resolution']}: {r['params']:,} params, {r['gflops']:.3f} GFLOPs)")


def scaling_explorer(phi: float = 0.0, base: EfficientNetConfig | None = None) -> ScalingExplorer:
    """Build the explorer at φ (0 = B0); display the returned object to use it."""
    return ScalingExplorer(phi, base)
