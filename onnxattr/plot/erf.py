"""The effective receptive field figure, as SR papers draw it (RepLKNet ``analyze_erf.py``, MambaIR, SMFANet): the ERF
in LR pixels on a log scale with the ``RdYlGn`` colormap, the radii holding 20 / 50 / 95 % of its mass as circles
around the window's centre and, where the graph's field is finite, the theoretical receptive field as a dashed box.

Panels: ``input`` (the first image, the window), ``erf`` (ERF / max on ``DECADES`` decades, log scale), ``papers``
(the scripts' own scaling, log10(ERF + 1) / max, drawn as their seaborn heat map with center 0: the upper half of
RdYlGn; for gradients far below 1 it is nearly linear), ``linear`` (ERF / max). ``atlas`` draws a many-window
result: the radii of every window position over the image and, for a finite field, the theoretical side beside the
95 % diameter on one scale. ``side_by_side`` (used by ``plot.several``) puts the ERFs of several models in a row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from ..methods.registry import radius_name
from ..options import ERF_MASSES
from .atlas import cell_map
from .common import STYLES, Panel, Style, as_rgb, bare, choose, draw_panels, figure_for, mark, window_lr

DECADES = 4
CMAP = "RdYlGn"
MAPS = ("erf", "papers", "linear")
PANELS = ("input", *MAPS)
DEFAULT = {"overview": ("input", "erf", "linear"), "paper": ("erf",)}
RADIUS_STYLES = ("dotted", "dashed", "solid")  # 20, 50, 95 %


def _radius(ds: xr.Dataset, share: float) -> float:
    return float(ds[radius_name(share)])


def centre_lr(ds: xr.Dataset) -> tuple[float, float]:
    """The window's centre (column, row) in LR pixel-centre coordinates (the panels' axes)."""
    x, y, size = window_lr(ds)
    return x + size / 2 - 0.5, y + size / 2 - 0.5


def field_text(ds: xr.Dataset) -> str:
    """'RF 14 px', 'RF unbounded' or 'RF unknown' from the ``receptive_field`` attr."""
    side = float(ds.attrs.get("receptive_field", np.nan))
    return f"RF {side:g} px" if np.isfinite(side) else ("RF unbounded" if side == np.inf else "RF unknown")


def radii_text(ds: xr.Dataset) -> str:
    return ", ".join(f"r{100 * t:g} {_radius(ds, t):.1f}" for t in ERF_MASSES)


def overlay(ax: Axes, ds: xr.Dataset, style: Style) -> None:
    """The radii as circles around the window's centre and the theoretical box (dashed) on an ERF panel."""
    cx, cy = centre_lr(ds)
    for t, line in zip(ERF_MASSES, RADIUS_STYLES):
        r = _radius(ds, t)
        if np.isfinite(r):
            ax.add_patch(Circle((cx, cy), max(r, 0.5), fill=False, edgecolor="black", linestyle=line, lw=style.line * 0.8))
    box = ds["receptive_box"].values
    if np.isfinite(box).all():
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor="blue",
                               linestyle="dashed", lw=style.line))


def log_panel(ds: xr.Dataset, title: str, cmap: str | None, group: str | None = None) -> Panel:
    """ERF / max on a log scale of ``DECADES`` decades (values below drawn at the bottom of the scale)."""
    erf = np.asarray(ds["erf"].values, dtype=np.float64)
    peak = erf.max() if erf.max() > 0 else 1.0
    low = 10.0**-DECADES
    return Panel(title, np.maximum(erf / peak, low), cmap=cmap or CMAP, norm=LogNorm(low, 1), label="ERF / max (log)",
                 window=window_lr(ds), group=group, ticks=[10.0**-k for k in range(DECADES, -1, -1)])


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None, cmap: str | None = None) -> Figure:
    """One window's ERF: see the module docstring."""
    erf = np.asarray(ds["erf"].values, dtype=np.float64)
    peak = erf.max() if erf.max() > 0 else 1.0
    papers = np.log10(erf + 1)
    paper = style.name == "paper"
    available = {
        "input": Panel("LR input" if paper else f"LR input 1 of {int(ds.attrs.get('image_count', 1))}, window (LR px)",
                       as_rgb(ds["input"]), window=window_lr(ds)),
        "erf": log_panel(ds, "ERF" if paper else f"ERF (log, {DECADES} decades)", cmap),
        "papers": Panel("log10(ERF + 1) / max", papers / (papers.max() or 1.0), cmap=cmap or CMAP, norm=Normalize(-1, 1),
                        label="as RepLKNet / SMFANet (center 0)", window=window_lr(ds), ticks=[0, 0.5, 1]),
        "linear": Panel("ERF / max", erf / peak, cmap=cmap or "magma", norm=Normalize(0, 1), label="ERF / max",
                        window=window_lr(ds), ticks=[0, 0.5, 1]),
    }
    names = list(panels) if panels else [p for p in DEFAULT[style.name]]
    chosen = choose(available, names, DEFAULT[style.name])
    cols = min(len(chosen), 3 if paper else style.max_columns)
    fig = figure_for(style, -(-len(chosen) // cols), cols, extra=0.35 if paper else 0.6)
    for name, ax in zip(names, draw_panels(fig, chosen, style, cols)):
        if name in MAPS:
            overlay(ax, ds, style)
    fig.suptitle(f"ERF  {radii_text(ds)} LR px, {field_text(ds)}" if paper else (
        f"{ds.attrs['model_file']}   ERF over {int(ds.attrs.get('image_count', 1))} image(s): {radii_text(ds)} LR px "
        f"(circles: dotted 20 %, dashed 50 %, solid 95 %)   theoretical {field_text(ds)} (blue box)"))
    return fig


def side_by_side(datasets: Sequence[xr.Dataset], style: Style, cmap: str | None = None) -> Figure:
    """The ERFs of several results (one window each) in a row, each on its own log scale, with radii and box."""
    n = len(datasets)
    cols = min(n, style.max_columns)
    fig = figure_for(style, -(-n // cols), cols, extra=0.8 if style.name == "paper" else 1.4)
    chosen = [log_panel(ds, f"{ds.attrs['model_file']}\n{radii_text(ds)} LR px, {field_text(ds)}", cmap, group="erf")
              for ds in datasets]
    for ds, ax in zip(datasets, draw_panels(fig, chosen, style, cols)):
        overlay(ax, ds, style)
    fig.suptitle("ERF (log scale; circles: radii of 20 / 50 / 95 % of the mass, LR px; blue box: theoretical field)")
    return fig


def atlas(ds: xr.Dataset, style: Style = STYLES["overview"]) -> Figure:
    """A many-window ERF: the image with the windows, r50 of every window, and the 95 % diameter 2 r95 next to the
    theoretical field's side (one scale) where the field is finite (``style``: the colorbars' text size)."""
    background = as_rgb(ds["hr"] if "hr" in ds else ds["output"])
    box = ds["receptive_box"].values
    finite = bool(np.isfinite(box).all())
    diameter = 2 * ds["erf_r95"].values
    sides = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) + 1 if finite else None
    cols = 4 if finite else 3
    fig = Figure(figsize=(3.3 * cols, 3.5), layout="constrained")
    axes = fig.subplots(1, cols)
    axes[0].imshow(background, interpolation="nearest")
    for k in range(ds.sizes["window"]):
        w = ds.isel(window=k)
        mark(axes[0], (float(w.window_x_sr), float(w.window_y_sr), float(w.window_size)), color="white", lw=0.5)
    bare(axes[0], f"{'HR (aligned)' if 'hr' in ds else 'SR output'} and the windows")
    cell_map(axes[1], ds, background, ds["erf_r50"].values, "ERF radius r50 (LR px)", fig, style)
    values = [diameter, sides] if finite else [diameter]
    both = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])
    norm = Normalize(float(np.nanmin(both)), float(np.nanmax(both)))
    cell_map(axes[2], ds, background, diameter, "ERF diameter 2 r95 (LR px)", fig, style, norm)
    if finite:
        cell_map(axes[3], ds, background, sides, "theoretical field side (LR px)", fig, style, norm)
    fig.suptitle(f"ERF atlas   {ds.attrs['model_file']}   {ds.sizes['window']} windows, "
                 f"{int(ds.attrs.get('image_count', 1))} image(s)   {field_text(ds)}", fontsize=9)
    return fig
