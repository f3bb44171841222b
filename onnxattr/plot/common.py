"""Pieces every figure uses: the two styles, images from a result, the window in LR and SR pixels,
and a grid of panels (images and colour maps, each map with a colorbar, the window on every panel).

Styles: ``overview`` (a screen page, 8 pt text) and ``paper`` (one journal column, 3.4 in wide, 7 pt
text, fonts embedded as TrueType in PDFs so that the text stays text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Rectangle

from ..errors import OnnxAttrError


@dataclass(frozen=True)
class Style:
    """Figure width (in), text size (pt), panels per row, line width of the window frame."""

    name: str
    width: float
    font: float
    max_columns: int
    line: float

    def rc(self) -> dict[str, Any]:
        """matplotlib rc parameters for this style (used around drawing and saving)."""
        return {
            "font.size": self.font, "axes.titlesize": self.font, "axes.labelsize": self.font,
            "xtick.labelsize": self.font, "ytick.labelsize": self.font, "legend.fontsize": self.font,
            "figure.titlesize": self.font + (1 if self.name == "overview" else 0),
            "axes.linewidth": 0.5 if self.name == "paper" else 0.8,
            "xtick.major.width": 0.5, "ytick.major.width": 0.5, "xtick.major.size": 2, "ytick.major.size": 2,
            "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",
        }


STYLES = {
    "overview": Style("overview", width=11.0, font=8.0, max_columns=6, line=1.2),
    "paper": Style("paper", width=3.4, font=7.0, max_columns=3, line=0.8),
}
WINDOW_COLOR = "red"


def number(value: float, spec: str) -> str:
    """``value`` formatted with ``spec``, or 'n/a' where it is undefined (NaN: a zero map's diffusion index)."""
    return "n/a" if not np.isfinite(value) else format(value, spec)


def style_of(name: str) -> Style:
    if name not in STYLES:
        raise OnnxAttrError(f"style {name!r}: use one of {', '.join(STYLES)}")
    return STYLES[name]


def as_rgb(da: xr.DataArray | np.ndarray) -> np.ndarray:
    """(channel, y, x) in [0, 1] -> (y, x, 3) for imshow (gray repeated)."""
    a = np.clip(np.asarray(getattr(da, "values", da), dtype=np.float64), 0, 1)
    return np.repeat(a, 3, axis=0).transpose(1, 2, 0) if a.shape[0] == 1 else a.transpose(1, 2, 0)


def window_sr(ds: xr.Dataset) -> tuple[float, float, float]:
    """(x, y, size) of the window of a one-window result (``ds.isel(window=k)``) in SR pixels."""
    return float(ds["window_x_sr"]), float(ds["window_y_sr"]), float(ds["window_size"])


def window_lr(ds: xr.Dataset) -> tuple[float, float, float]:
    """The window in LR pixels: HR-frame position / s, i.e. (X - c/2) / s with output side s n + c."""
    s, c = float(ds.attrs["scale"]), float(ds.attrs.get("offset", 0))
    x, y, size = window_sr(ds)
    return (x - c / 2) / s, (y - c / 2) / s, size / s


def mark(ax: Axes, xys: tuple[float, float, float], color: str = WINDOW_COLOR, lw: float = 1.2) -> None:
    """Draw a window (x, y, size) in the axes' pixel coordinates."""
    x, y, size = xys
    ax.add_patch(Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor=color, linewidth=lw))


def frame(ax: Axes, color: str = WINDOW_COLOR, lw: float = 1.2) -> None:
    """A panel that shows only the window: its border is the window frame."""
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(lw)


def bare(ax: Axes, title: str) -> None:
    ax.set_title(title, pad=2)
    ax.set_xticks([])
    ax.set_yticks([])


@dataclass
class Panel:
    """One panel: an RGB image (``cmap`` None) or a colour map with its ``norm`` and colorbar ``label``.

    ``window``: (x, y, size) to mark in the panel's pixels; ``framed``: the panel is the window itself.
    Maps with the same ``group`` share one colorbar (one colour scale).
    """

    title: str
    data: np.ndarray
    cmap: str | None = None
    norm: Normalize | None = None
    label: str = ""
    window: tuple[float, float, float] | None = None
    framed: bool = False
    group: str | None = None
    ticks: Sequence[float] | None = None
    tick_labels: Sequence[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def draw_panels(fig: Figure | SubFigure, panels: Sequence[Panel], style: Style, columns: int | None = None) -> list[Axes]:
    """Lay ``panels`` out in rows of ``columns`` (default: the style's maximum), colorbars below the
    maps (one per group), the window on every panel."""
    n = len(panels)
    cols = min(n, columns or style.max_columns)
    rows = -(-n // cols)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    groups: dict[str, list[tuple[Axes, Any, Panel]]] = {}
    for ax, p in zip(axes, panels):
        if p.cmap is None:
            ax.imshow(p.data, interpolation="nearest")
        else:
            im = ax.imshow(p.data, cmap=p.cmap, norm=p.norm, interpolation="nearest")
            groups.setdefault(p.group or f"_{id(p)}", []).append((ax, im, p))
        if p.window is not None:
            mark(ax, p.window, color=WINDOW_COLOR if p.cmap is None else "black", lw=style.line)
        if p.framed:
            frame(ax, lw=style.line * 1.5)
        bare(ax, p.title)
    for ax in axes[n:]:
        ax.set_axis_off()
    for members in groups.values():
        _, im, p = members[-1]
        bar = fig.colorbar(im, ax=[a for a, _, _ in members], location="bottom", shrink=0.9, aspect=25 if len(members) > 1 else 12,
                           pad=0.02, ticks=p.ticks)
        bar.ax.tick_params(labelsize=style.font, length=2, width=0.5)
        bar.outline.set_linewidth(0.5)
        if p.tick_labels is not None:
            bar.ax.set_xticklabels(p.tick_labels)
        if p.label:
            bar.set_label(p.label, fontsize=style.font, labelpad=1)
    return list(axes[:n])


def figure_for(style: Style, rows: int, columns: int, panel_height: float = 1.0, extra: float = 0.5) -> Figure:
    """A constrained-layout figure of the style's width whose height fits ``rows`` of square panels plus
    colorbars and titles (``extra`` in per row)."""
    side = style.width / columns
    return Figure(figsize=(style.width, rows * (side * panel_height + extra) + 0.25), layout="constrained")


def choose(panels: dict[str, Panel], wanted: Sequence[str] | None, default: Sequence[str]) -> list[Panel]:
    """The panels named in ``wanted`` (default ``default``), in that order; unknown names are errors."""
    names = list(wanted) if wanted else [p for p in default if p in panels]
    unknown = [p for p in names if p not in panels]
    if unknown:
        raise OnnxAttrError(f"panel(s) {', '.join(unknown)} not in this figure; choose from {', '.join(panels)}")
    return [panels[p] for p in names]


def hr_panels(ds: xr.Dataset, x: int, y: int, size: int, short: bool = False) -> dict[str, Panel]:
    """SR crop of the window and, when the result has ``hr``, the HR crop with the SR output's PSNR
    (Y channel, whole image, vs HR)."""
    out = {"sr": Panel("SR" if short else f"SR window {size}px", as_rgb(ds["output"])[y: y + size, x: x + size], framed=True)}
    if "hr" in ds:
        psnr = ds.attrs.get("psnr_y", ds.attrs.get("psnr"))
        note = f"{float(psnr):.2f} dB" if psnr is not None and np.isfinite(float(psnr)) else ""
        title = f"HR (SR {note})" if short else f"HR window, SR PSNR-Y {note}"
        out["hr"] = Panel(title if note else "HR", as_rgb(ds["hr"])[y: y + size, x: x + size], framed=True)
    return out


def psnr_note(ds: xr.Dataset) -> str:
    """'   PSNR (Y) vs HR = .. dB' when the result holds the HR image (its ``psnr_y`` attr), else ''."""
    if "psnr_y" not in ds.attrs:
        return ""
    return f"   PSNR{' (Y)' if ds.sizes['channel'] == 3 else ''} vs HR {float(ds.attrs['psnr_y']):.2f} dB"
