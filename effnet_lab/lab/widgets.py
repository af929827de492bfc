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
    effnet-preset               the Dropdown (values "phi", "b0" … "b7", "custom")
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
from functools import lru_cache
from typing import Any

import ipywidgets as widgets

from ..paper.architecture import B0_STAGES, EfficientNetConfig
from ..paper.cost import count_cost
from ..paper.scaling import ALPHA, BETA, GAMMA, RELEASED, compound_multipliers, implied_phi

ECHO_WINDOW_S = 2.0  # how long after we set a slider its rounded echo from the browser is expected

PHI_RANGE = (-2.0, 8.0, 0.1)  # min, max, step
WIDTH_RANGE = (0.5, 3.0, 0.05)
DEPTH_RANGE = (0.5, 4.5, 0.05)
RESOLUTION_RANGE = (96, 800, 4)  # step 4: every released size (260, 380, …) is reachable

_KERNEL_COLOURS = {3: "#4c78a8", 5: "#f58518"}
_OTHER_COLOUR = "#9d9d9d"


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


def render_report(report: dict[str, Any]) -> dict[str, str]:
    """HTML for each display widget: keys params, flops, memory, resolution, table, diagram, curve."""
    p = report["params"]
    return dict(
        params=_value_span(p, f"{p:,}", f"parameters ({p / 1e6:.2f} M)"),
        flops=_value_span(report["macs"], f"{report['gflops']:.3f}", "GFLOPs (multiply-adds)"),
        memory=_value_span(report["activation_bytes"], f"{report['activation_mb']:.1f}",
                           "MB of activations (fp32, one image)"),
        resolution=_value_span(report["resolution"], str(report["resolution"]), "px input"),
        table=render_table(report),
        diagram=render_diagram(report),
        curve=render_curve(report),
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


def _stage_width(r: dict[str, Any]) -> int:
    return max(_MIN_STAGE_W, r["repeats"] * _BLOCK_W)


def _diagram_width(rows: list[dict[str, Any]]) -> int:
    return 2 * _PAD + sum(_stage_width(r) + _GAP for r in rows[:-1])


def render_diagram(report: dict[str, Any]) -> str:
    """An SVG: one box per block (stem, each MBConv, head); height ∝ √channels; colour =
    kernel size; under each stage its repeats and output resolution."""
    width, height = _diagram_size()
    base_y = height - 30  # boxes stand on this line; labels go below
    parts = [f'<svg class="effnet-diagram-svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="9">']
    x = _PAD
    for r in report["stages"][:-1]:  # the classifier (pool + fc) has no spatial map to draw
        h = max(2.0, _H_PER_SQRT_CH * math.sqrt(r["channels"]))
        colour = _KERNEL_COLOURS.get(r["kernel"], _OTHER_COLOUR) if r["name"].startswith("stage") else _OTHER_COLOUR
        for j in range(r["repeats"]):
            parts.append(f'<rect x="{x + j * _BLOCK_W}" y="{base_y - h:.1f}" width="{_BLOCK_W - 1}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{r["name"]} block {j + 1}: {r["block"]}, '
                         f'{r["channels"]} ch, {r["out_resolution"]}²</title></rect>')
        label = r["name"].replace("stage ", "s")
        mid = x + _stage_width(r) / 2
        parts.append(f'<text x="{mid:.1f}" y="{base_y + 11}" text-anchor="middle">{label}×{r["repeats"]}</text>')
        parts.append(f'<text x="{mid:.1f}" y="{base_y + 22}" text-anchor="middle" fill="#555">'
                     f'{r["out_resolution"]}²</text>')
        x += _stage_width(r) + _GAP
    parts.append(f'<text x="{_PAD}" y="11" fill="#333">box height ∝ √channels, one box per block; '
                 f'<tspan fill="{_KERNEL_COLOURS[3]}">■ k3</tspan> <tspan fill="{_KERNEL_COLOURS[5]}">■ k5</tspan> '
                 f'<tspan fill="{_OTHER_COLOUR}">■ stem/head</tspan>; under each stage: repeats, output size</text>')
    parts.append("</svg>")
    return "".join(parts)


# FLOPs-vs-params plane, log-log; the static part (axes, B0–B7, the φ curve) is built once.
_CW, _CH, _CL, _CB, _CT, _CR = 360, 260, 44, 34, 10, 10  # size and left/bottom/top/right margins


@lru_cache(maxsize=1)
def _curve_axes() -> tuple[int, int, int, int]:
    """log10 ranges (params in M, GFLOPs): whole decades around B0–B7. Settings outside
    (extreme sliders) are pinned to the frame and drawn hollow."""
    pts = [scaling_report(m.width, m.depth, m.resolution) for m in RELEASED.values()]
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


@lru_cache(maxsize=1)
def _curve_static() -> str:
    x0, x1, y0, y1 = _curve_axes()
    out = [f'<svg class="effnet-curve-svg" viewBox="0 0 {_CW} {_CH}" width="{_CW}" height="{_CH}" '
           'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="9">',
           f'<rect x="{_CL}" y="{_CT}" width="{_CW - _CL - _CR}" height="{_CH - _CB - _CT}" '
           'fill="none" stroke="#999"/>']
    for e in range(x0, x1 + 1):
        x, _, _ = _xy(10**e * 1e6, 10**y0)
        out.append(f'<line x1="{x:.1f}" y1="{_CT}" x2="{x:.1f}" y2="{_CH - _CB}" stroke="#eee"/>'
                   f'<text x="{x:.1f}" y="{_CH - _CB + 11}" text-anchor="middle">{10**e:g}M</text>')
    for e in range(y0, y1 + 1):
        _, y, _ = _xy(10**x0 * 1e6, 10**e)
        out.append(f'<line x1="{_CL}" y1="{y:.1f}" x2="{_CW - _CR}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{_CL - 3}" y="{y + 3:.1f}" text-anchor="end">{10**e:g}</text>')
    out.append(f'<text x="{(_CL + _CW) / 2}" y="{_CH - 4}" text-anchor="middle">parameters</text>'
               f'<text x="10" y="{(_CT + _CH - _CB) / 2}" transform="rotate(-90 10 {(_CT + _CH - _CB) / 2})" '
               'text-anchor="middle">GFLOPs (multiply-adds)</text>')
    # the pure rule, φ = −2 … 8
    pts = []
    for i in range(0, 101):
        phi = PHI_RANGE[0] + i * (PHI_RANGE[1] - PHI_RANGE[0]) / 100
        m = compound_multipliers(phi)
        r = scaling_report(m.width, m.depth, m.resolution)
        x, y, inside = _xy(r["params"], r["gflops"])
        if inside:
            pts.append(f"{x:.1f},{y:.1f}")
    out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#888" stroke-dasharray="3,2"/>')
    for key, m in RELEASED.items():
        r = scaling_report(m.width, m.depth, m.resolution)
        x, y, _ = _xy(r["params"], r["gflops"])
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#4c78a8"/>'
                   f'<text x="{x - 5:.1f}" y="{y - 5:.1f}" text-anchor="end" fill="#4c78a8">{key.upper()}</text>')
    out.append(f'<text x="{_CL + 6}" y="{_CT + 12}" fill="#4c78a8">● released B0–B7</text>'
               f'<text x="{_CL + 6}" y="{_CT + 24}" fill="#888">- - pure rule, '
               f'φ = {PHI_RANGE[0]:g} … {PHI_RANGE[1]:g}</text>'
               f'<text x="{_CL + 6}" y="{_CT + 36}" fill="#d62728">● this network</text>')
    return "".join(out)


def render_curve(report: dict[str, Any]) -> str:
    """The FLOPs-vs-params plane with B0–B7, the pure-rule curve and the current network."""
    x, y, inside = _xy(report["params"], report["gflops"])
    fill = 'fill="#d62728"' if inside else 'fill="white" stroke="#d62728" stroke-width="2"'  # hollow: off the axes
    return (_curve_static() + f'<circle class="effnet-current" cx="{x:.1f}" cy="{y:.1f}" r="5" {fill} '
            f'data-params="{report["params"]}" data-macs="{report["macs"]}"/></svg>')


# ------------------------------------------------------------------------------ the widget
_PRESET_OPTIONS = ([("pure rule: follow φ", "phi")] + [(f"{k.upper()} (released)", k) for k in RELEASED]
                   + [("custom (detached from φ)", "custom")])


class ScalingExplorer:
    """φ, width, depth and resolution sliders driving a live cost table, diagram and plot.

    `widget` is the VBox to display (displaying the explorer itself does the same);
    `report` is the latest `scaling_report`; `mode` is "phi", a released key ("b3") or "custom".
    """

    def __init__(self, phi: float = 0.0, base: EfficientNetConfig | None = None):
        self.base = base
        self.mode = "phi"
        self._syncing = False  # True while *we* move sliders, so observers ignore those moves
        # What the explorer shows: set by φ, a preset or a manual move — not read back from the
        # sliders, whose values a browser may round to the slider step.
        self.current: tuple[float, float, int] = (1.0, 1.0, 224)
        self._recent: dict[str, list[tuple[float, float]]] = {"width": [], "depth": [], "resolution": []}
        self.report: dict[str, Any] = {}

        def slider(cls, rng, desc, value, css, fmt=None):
            kw = dict(min=rng[0], max=rng[1], step=rng[2], value=value, description=desc, continuous_update=True,
                      layout=widgets.Layout(width="420px"), style={"description_width": "80px"})
            if fmt:
                kw["readout_format"] = fmt
            w = cls(**kw)
            w.add_class(css)
            return w

        self.phi = slider(widgets.FloatSlider, PHI_RANGE, "φ", phi, "effnet-phi-slider", ".1f")
        self.width = slider(widgets.FloatSlider, WIDTH_RANGE, "width (β^φ)", 1.0, "effnet-width-slider", ".3f")
        self.depth = slider(widgets.FloatSlider, DEPTH_RANGE, "depth (α^φ)", 1.0, "effnet-depth-slider", ".3f")
        self.resolution = slider(widgets.IntSlider, RESOLUTION_RANGE, "resolution", 224, "effnet-resolution-slider")
        self.preset = widgets.Dropdown(options=_PRESET_OPTIONS, value="phi", description="network",
                                       style={"description_width": "80px"}, layout=widgets.Layout(width="320px"))
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
            widgets.HBox([self.preset, self.phi]),
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
        self.set_phi(phi)

    @staticmethod
    def _html(css: str) -> widgets.HTML:
        w = widgets.HTML()
        w.add_class(css)
        return w

    # -- programmatic control (what the observers call) -------------------------------------
    def set_phi(self, phi: float) -> dict[str, Any]:
        """Follow the pure rule at φ: width β^φ, depth α^φ, resolution 224·γ^φ (to 8 px)."""
        m = compound_multipliers(phi)
        self.mode = "phi"
        self._set(phi=phi, width=m.width, depth=m.depth, resolution=m.resolution, preset="phi")
        return self.update()

    def set_preset(self, key: str) -> dict[str, Any]:
        """Jump to a released model's multipliers ("b0" … "b7"); φ no longer drives them."""
        m = RELEASED[key]
        self.mode = key
        self._set(width=m.width, depth=m.depth, resolution=m.resolution, preset=key)
        return self.update()

    def set_multipliers(self, width: float, depth: float, resolution: int) -> dict[str, Any]:
        """Set the three by hand (detached from φ)."""
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

    def _on_preset(self, change: dict) -> None:
        if self._syncing:
            return
        if change["new"] == "phi":
            self.set_phi(self.phi.value)  # re-attach to φ
        elif change["new"] in RELEASED:
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
            return
        self.mode = "custom"
        self.current = (self.width.value, self.depth.value, self.resolution.value)
        self._set(preset="custom")
        self.update()

    # -- the update callback ----------------------------------------------------------------
    def update(self) -> dict[str, Any]:
        """Recompute from the slider values and refresh every display widget (no printing)."""
        report = scaling_report(*self.current, self.base)
        shown = render_report(report)
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
        if self.mode == "phi":
            phi = self.phi.value
            return (f"{span}<b>following φ = {phi:.1f}</b></span>: depth α^φ = {ALPHA}^{phi:.1f} = "
                    f"{ALPHA**phi:.3f}, width β^φ = {BETA}^{phi:.1f} = {BETA**phi:.3f}, resolution "
                    f"224·γ^φ = 224·{GAMMA}^{phi:.1f} = {224 * GAMMA**phi:.1f} → {self.resolution.value} px "
                    f"(FLOPs ≈ {ALPHA * BETA**2 * GAMMA**2:.2f}^φ × B0's)")
        if self.mode in RELEASED:
            m = RELEASED[self.mode]
            ph = implied_phi(m)
            return (f"{span}<b>released {self.mode.upper()}</b></span>: width {m.width}, depth {m.depth}, "
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
        return (f"ScalingExplorer(mode={self.mode}, width={r['width']:.3f}, depth={r['depth']:.3f}, "
                f"resolution={r['resolution']}: {r['params']:,} params, {r['gflops']:.3f} GFLOPs)")


def scaling_explorer(phi: float = 0.0, base: EfficientNetConfig | None = None) -> ScalingExplorer:
    """Build the explorer at φ (0 = B0); display the returned object to use it."""
    return ScalingExplorer(phi, base)
