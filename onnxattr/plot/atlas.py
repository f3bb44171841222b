"""The attribution atlas of a many-window result (``--grid`` or several windows): each per-window
number drawn as a map over the image, one colour cell per window.

Panels: the image (HR when the result holds it, else the SR output) with the windows, then one panel
per per-window check present in ``ATLAS`` (DI, reach, completeness error, attributed share, the
explained value): each window is a cell centred on the window (side = the window, or the grid's stride
when windows overlap), coloured by its value (``viridis``), over the dimmed image.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .common import STYLES, Style, as_rgb, bare, chars, columns_for, label_of, mark, psnr_note, wrap

ATLAS = {
    "diffusion_index": "diffusion index (DI)",
    "reach": "reach: mean distance of the attribution (LR px)",
    "completeness_error": "completeness error",
    "attributed_share": "attributed pixel share",
    "objective_input": "detector D on the window",
    "target_value": "target t on the window",
    "effect_range": "CEM effect range (dB)",
    "psnr_window": "window PSNR vs HR (dB)",
}


def cell_side(ds: xr.Dataset) -> float:
    """The side of a window's cell: its size, or the smallest step between window positions when smaller."""
    side = float(ds.window_size.min())
    for c in ("window_x_sr", "window_y_sr"):
        steps = np.diff(np.unique(ds[c].values))
        if steps.size:
            side = min(side, float(steps.min()))
    return side


def cell_map(ax, ds: xr.Dataset, background: np.ndarray, values: np.ndarray, title: str, fig: Figure,
             style: Style = STYLES["overview"], norm: Normalize | None = None) -> None:
    """One atlas panel: each window a cell coloured by its value (``viridis``; ``norm`` default: the values' range)
    over the dimmed image, with a colorbar."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    norm = norm or Normalize(*(finite.min(), finite.max()) if finite.size else (0, 1))
    cmap = colormaps["viridis"]
    ax.imshow(0.35 * background + 0.65 * background.mean(axis=2, keepdims=True), interpolation="nearest")
    side = cell_side(ds)
    for k in range(ds.sizes["window"]):
        w = ds.isel(window=k)
        cx, cy = float(w.window_x_sr) + float(w.window_size) / 2, float(w.window_y_sr) + float(w.window_size) / 2
        colour = cmap(norm(values[k])) if np.isfinite(values[k]) else (0.6, 0.6, 0.6, 1.0)
        ax.add_patch(Rectangle((cx - side / 2 - 0.5, cy - side / 2 - 0.5), side, side, facecolor=colour, alpha=0.8, lw=0))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.75)
    bar.ax.tick_params(labelsize=style.font)
    bare(ax, title)


def draw(ds: xr.Dataset, style: Style = STYLES["overview"]) -> Figure:
    """The atlas of a result with a ``window`` dim (any method): one row on a screen page; in the paper style
    at the column's width, the panels in even rows."""
    names = [n for n in ATLAS if n in ds and ds[n].dims == ("window",)]
    background = as_rgb(ds["hr"] if "hr" in ds else ds["output"])
    n = 1 + len(names)
    paper = style.name == "paper"
    cols = columns_for(n, max(1, int(style.width // 1.6))) if paper else n
    rows = -(-n // cols)
    width = style.width if paper else 3.3 * cols
    side = width / cols
    fig = Figure(figsize=(width, rows * (side + 0.45) + 0.35), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    axes[0].imshow(background, interpolation="nearest")
    for k in range(ds.sizes["window"]):
        w = ds.isel(window=k)
        mark(axes[0], (float(w.window_x_sr), float(w.window_y_sr), float(w.window_size)), color="white", lw=0.5)
    bare(axes[0], wrap(f"{'HR (aligned)' if 'hr' in ds else 'SR output'} and the windows", chars(style, side)))
    for ax, name in zip(axes[1:], names):
        cell_map(ax, ds, background, ds[name].values, wrap(ATLAS[name], chars(style, side)), fig, style)
    for ax in axes[n:]:
        ax.set_axis_off()
    lo, hi = int(ds.window_size.min()), int(ds.window_size.max())
    title = (f"{label_of(ds)}: {str(ds.attrs['method']).upper()} atlas, {ds.sizes['window']} windows of "
             f"{lo if lo == hi else f'{lo}-{hi}'} px{psnr_note(ds)}")
    fig.suptitle(wrap(" ".join(title.split()), chars(style, width)) if paper else title,
                 fontsize=style.font + (0 if paper else 1))
    return fig
