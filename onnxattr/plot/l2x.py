"""The L2X figure (Yu & Yang, Fig. 2): LR input with the window, the total attribution and its
positive and negative contributions (paper eqs. 3-4) side by side.

Colormap: matplotlib's diverging ``PiYG`` (green = positive, magenta = negative), the paper's
green/red convention in a colour-blind-safe form (green vs magenta stays apart for deuteranopia
and protanopia, unlike green vs red). The three maps share one symmetric-log colour scale over
``DECADES`` decades below the largest |value|: attribution is heavy-tailed (on DAT-light, half of
sum |R| sits in 10 pixels and 99% in 2,800), and a linear scale would show only the top few pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure

from .common import (STYLES, Panel, Style, as_rgb, choose, columns_for, draw_panels, figure_for, hr_panels, label_of,
                     number, title, window_lr, window_sr)

CMAP = "PiYG"
DECADES = 3


def _channel_sum(da: xr.DataArray) -> np.ndarray:
    """Signed sum over channels, (y, x)."""
    return np.asarray(da.values, dtype=np.float64).sum(axis=0)


PANELS = ("input", "total", "positive", "negative", "sr", "hr")
DEFAULT = {"overview": ("input", "total", "positive", "negative", "sr", "hr"), "paper": ("input", "total", "positive", "negative")}


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None, cmap: str | None = None) -> Figure:
    """Panels: LR input + window (LR px), R = R+ + R-, R+ (from x > x_ref), R- (from x < x_ref), the SR
    crop and (with HR) the HR crop; each map summed over channels, one symmetric-log scale from the max
    of |R+|, |R-|, |R| down ``DECADES`` decades, one colorbar for the three."""
    lr = as_rgb(ds["input"])
    paper = style.name == "paper"
    maps = {
        "total": ("R" if paper else "L2X attribution R", _channel_sum(ds["attribution"])),
        "positive": ("R+" if paper else "R+ (x > baseline)", _channel_sum(ds["attribution_pos"])),
        "negative": ("R-" if paper else "R- (x < baseline)", _channel_sum(ds["attribution_neg"])),
    }
    limit = float(np.abs(np.stack([v for _, v in maps.values()])).max()) or 1.0
    norm = SymLogNorm(linthresh=limit * 10.0**-DECADES, vmin=-limit, vmax=limit, base=10)
    ticks = sorted([sign * limit * 10.0**-k for sign in (-1, 1) for k in range(0, DECADES, 2 if paper else 1)] + [0.0])
    label = ("contribution, symlog" if paper else
             f"contribution (green +, magenta -), log scale, linear within +-{limit * 10.0**-DECADES:.2g}")
    win = window_lr(ds)
    x, y, size = (int(v) for v in window_sr(ds))
    available = {
        "input": Panel("LR input" if paper else f"LR input {lr.shape[1]}x{lr.shape[0]}, window (LR px)", lr, window=win),
        **{k: Panel(title, v, cmap=cmap or CMAP, norm=norm, label=label, window=win, group="R", ticks=ticks,
                    tick_labels=[f"{t:.1g}" for t in ticks]) for k, (title, v) in maps.items()},
        **hr_panels(ds, x, y, size, short=paper),
    }
    chosen = choose(available, panels, DEFAULT[style.name])
    cols = columns_for(len(chosen), style.max_columns)
    fig = figure_for(style, -(-len(chosen) // cols), cols, extra=0.4 if paper else 0.7)
    draw_panels(fig, chosen, style, cols)
    delta = float(ds["target_value"]) - float(ds["target_reference_value"])
    comp, di = float(ds["completeness_error"]), float(ds["diffusion_index"])
    title(fig, f"{label_of(ds)}: L2X, DI {number(di, '.2f')} %, t(x) - t(x_ref) = {delta:.3g}" if paper else (
        f"{label_of(ds)} ({ds.attrs['model_file']})   L2X target {ds.attrs.get('target')}: t(x) - t(x_ref) = {delta:.4g}   "
        f"DI {number(di, '.2f')} %   completeness error {number(comp, '.2g')}   reference blur sigma "
        f"{float(ds.attrs['sigma']):g}, l={int(ds.attrs['kernel_size'])}"), style)
    return fig
