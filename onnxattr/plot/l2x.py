"""The L2X figure (Yu & Yang, Fig. 2): LR input with the window, the total attribution and its
positive and negative contributions (paper eqs. 3-4) side by side.

Colormap: matplotlib's diverging ``PiYG`` (green = positive, magenta = negative), the paper's
green/red convention in a colour-blind-safe form (green vs magenta stays apart for deuteranopia
and protanopia, unlike green vs red). The three maps share one symmetric-log colour scale over
``DECADES`` decades below the largest |value|: attribution is heavy-tailed (on DAT-light, half of
sum |R| sits in 10 pixels and 99% in 2,800), and a linear scale would show only the top few pixels.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure

from .common import as_rgb, bare, mark, psnr_note, window_lr

CMAP = "PiYG"
DECADES = 3


def _channel_sum(da: xr.DataArray) -> np.ndarray:
    """Signed sum over channels, (y, x)."""
    return np.asarray(da.values, dtype=np.float64).sum(axis=0)


def draw(ds: xr.Dataset) -> Figure:
    """Four panels: LR input + window (LR px), R = R+ + R-, R+ (from x > x_ref), R- (from x < x_ref);
    each map summed over channels, one symmetric-log scale from the max of |R+|, |R-|, |R| down ``DECADES`` decades."""
    lr = as_rgb(ds["input"])
    maps = {
        "L2X attribution R": _channel_sum(ds["attribution"]),
        "R+  (pixels brighter than reference)": _channel_sum(ds["attribution_pos"]),
        "R-  (pixels darker than reference)": _channel_sum(ds["attribution_neg"]),
    }
    limit = float(np.abs(np.stack(list(maps.values()))).max()) or 1.0
    norm = SymLogNorm(linthresh=limit * 10.0**-DECADES, vmin=-limit, vmax=limit, base=10)
    win = window_lr(ds)

    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    axes[0].imshow(lr, interpolation="nearest")
    mark(axes[0], win)
    bare(axes[0], f"LR input {lr.shape[1]}x{lr.shape[0]}, window (LR px)")
    image = None
    for ax, (title, values) in zip(axes[1:], maps.items()):
        image = ax.imshow(values, cmap=CMAP, norm=norm, interpolation="nearest")
        mark(ax, win, color="black", lw=1)
        bare(ax, title)
    ticks = [sign * limit * 10.0**-k for sign in (-1, 1) for k in range(DECADES)] + [0.0]
    bar = fig.colorbar(image, ax=list(axes[1:]), shrink=0.8, ticks=sorted(ticks),
                       label=f"contribution (green +, magenta -)\nlog scale, linear within +-{limit * 10.0**-DECADES:.2g}")
    bar.ax.set_yticklabels([f"{t:.2g}" for t in sorted(ticks)])
    fig.suptitle(
        f"{ds.attrs['model_file']}   L2X target {ds.attrs.get('target')}: "
        f"t(x) - t(x_ref) = {float(ds['target_value']) - float(ds['target_reference_value']):.4g}   "
        f"completeness error {float(ds['completeness_error']):.2g}   "
        f"reference blur sigma {float(ds.attrs['sigma']):g}, l={int(ds.attrs['kernel_size'])}{psnr_note(ds)}",
        fontsize=9,
    )
    return fig
