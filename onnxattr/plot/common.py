"""Pieces every figure uses: the two styles, images from a result, the window in LR and SR pixels,
a grid of panels (images and colour maps, each map with a colorbar, the window on every panel) and
saving at the style's width.

Styles: ``overview`` (a screen page, 8 pt text) and ``paper`` (a journal column: 3.4 in wide, or 7.0 in
for two columns with ``width="double"``; 7 pt text, never smaller; at most ``max_height`` tall, so a
figure with many models or images splits into pages; fonts embedded as TrueType in PDFs so that the text
stays text). A paper figure is saved exactly at its width (``save_figure``).
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field, replace
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
    """Figure width (in), text size (pt), panels per row, line width of the window frame, the tallest page (in)."""

    name: str
    width: float
    font: float
    max_columns: int
    line: float
    max_height: float = 40.0

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
    "paper": Style("paper", width=3.4, font=7.0, max_columns=4, line=0.8, max_height=9.0),
}
# --width double: two journal columns (6.9-7.2 in); max_columns: panels per row at that width
DOUBLE = {"width": 7.0, "max_columns": 8}
WINDOW_COLOR = "red"
PANEL_MIN = 0.75  # in: the narrowest column of a paper grid whose caption ("DI 12.3 | 28.41") fits at 7 pt


def number(value: float, spec: str) -> str:
    """``value`` formatted with ``spec``, or 'n/a' where it is undefined (NaN: a zero map's diffusion index)."""
    return "n/a" if not np.isfinite(value) else format(value, spec)


def style_of(name: str | Style, width: str | None = None) -> Style:
    """The style ``name``; ``width`` 'single' (default) or 'double' picks a paper figure's columns."""
    if isinstance(name, Style):
        return name
    if name not in STYLES:
        raise OnnxAttrError(f"style {name!r}: use one of {', '.join(STYLES)}")
    if width not in (None, "single", "double"):
        raise OnnxAttrError(f"width {width!r}: use single (one journal column) or double (two)")
    if width == "double":
        if name != "paper":
            raise OnnxAttrError("--width sets a paper figure's columns; add --style paper, or leave --width out")
        return replace(STYLES[name], **DOUBLE)
    return STYLES[name]


def wrap(text: str, width: int) -> str:
    """Break ``text`` (a label or file name) at '-', '_', '.' or spaces into lines of about ``width`` characters."""
    lines, line = [], ""
    for part in re.split(r"(?<=[-_. ])", text):
        if line and len(line) + len(part) > width:
            lines.append(line.rstrip())
            line = ""
        line += part
    return "\n".join([*lines, line.rstrip()])


def title(fig: Figure | SubFigure, text: str, style: Style, width: float | None = None) -> None:
    """The figure's title; in the paper style wrapped at spaces to the figure's width (``width``, default the style's)."""
    if style.name == "paper":
        text = textwrap.fill(" ".join(text.split()), chars(style, width or style.width))
    fig.suptitle(text)


def chars(style: Style, inches: float) -> int:
    """About how many characters of the style's text fit in ``inches`` (a character is about 0.55 em wide)."""
    return max(4, int(inches * 72 / (0.55 * style.font)))


def columns_for(n: int, most: int) -> int:
    """Columns for ``n`` panels with at most ``most`` per row, rows as even as they can be (5 of 4: 3 + 2, not 4 + 1)."""
    rows = -(-n // max(1, most))
    return -(-n // rows) if n else 1


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
    """Lay ``panels`` out in rows of ``columns`` (default: the style's maximum, rows as even as they can be),
    colorbars below the maps (one per group), the window on every panel."""
    n = len(panels)
    cols = min(n, columns or columns_for(n, style.max_columns))
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


def panel_names(wanted: Sequence[str] | None, known: Sequence[str], default: Sequence[str],
                where: str = "this figure") -> list[str]:
    """The panel names in ``wanted`` (default ``default``), in that order; a name not in ``known`` is a one-line
    error naming the figure (``where``) and the known names."""
    names = list(wanted) if wanted else list(default)
    unknown = [p for p in names if p not in known]
    if unknown:
        raise OnnxAttrError(f"panel(s) {', '.join(unknown)} not in {where}; choose from {', '.join(known)}")
    return names


def choose(panels: dict[str, Panel], wanted: Sequence[str] | None, default: Sequence[str]) -> list[Panel]:
    """The panels named in ``wanted`` (default: those of ``default`` the figure has), in that order
    (``panel_names``)."""
    return [panels[p] for p in panel_names(wanted, list(panels), [p for p in default if p in panels])]


def psnr_name(ds: xr.Dataset) -> str:
    """'PSNR-Y' for RGB results (PSNR of BT.601 Y), 'PSNR' for gray ones (their one channel)."""
    return "PSNR-Y" if ds.sizes.get("channel", 3) == 3 else "PSNR"


def hr_panels(ds: xr.Dataset, x: int, y: int, size: int, short: bool = False) -> dict[str, Panel]:
    """SR crop of the window and, when the result has ``hr``, the HR crop with the SR output's PSNR-Y
    (whole image, vs HR)."""
    out = {"sr": Panel("SR" if short else f"SR window {size}px", as_rgb(ds["output"])[y: y + size, x: x + size], framed=True)}
    if "hr" in ds:
        psnr = ds.attrs.get("psnr_y", ds.attrs.get("psnr"))
        note = f"{float(psnr):.2f} dB" if psnr is not None and np.isfinite(float(psnr)) else ""
        title = f"HR, SR {note}" if short else f"HR window, SR {psnr_name(ds)} {note}"
        out["hr"] = Panel(title if note else "HR", as_rgb(ds["hr"])[y: y + size, x: x + size], framed=True)
    return out


def psnr_note(ds: xr.Dataset) -> str:
    """'   PSNR-Y vs HR .. dB' when the result holds the HR image (its ``psnr_y`` attr), else ''."""
    if "psnr_y" not in ds.attrs:
        return ""
    return f"   {psnr_name(ds)} vs HR {float(ds.attrs['psnr_y']):.2f} dB"


def label_of(ds: xr.Dataset) -> str:
    """The model's label in a result (``model_label``; results of older versions: the file name without .onnx)."""
    return str(ds.attrs.get("model_label") or str(ds.attrs.get("model_file", "model")).removesuffix(".onnx"))


def save_bbox(style: Style) -> str | None:
    """What ``savefig`` keeps: a paper figure whole (its width is the journal column's, exactly, and its height is
    laid out for its content); an overview figure cropped to its content."""
    return None if style.name == "paper" else "tight"


def chunks(n: int, per_page: int) -> list[range]:
    """``range(n)`` in consecutive chunks of at most ``per_page``, as even as they can be (7 of 3: 3, 2, 2)."""
    pages = max(1, math.ceil(n / max(1, per_page)))
    size = math.ceil(n / pages)
    return [range(i, min(n, i + size)) for i in range(0, n, size)] or [range(0)]
