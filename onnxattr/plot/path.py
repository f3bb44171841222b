"""The path curves of a LAM result (Gu & Dong 2021, Fig. 3 f-h): the objective D(F(x_i)) along the path, the size of
each step |x_i - x_{i-1}|, and the cumulative attribution sum_{j <= i} of the steps' masses, which ends at sum A and,
for an exact integral, at D(F(I)) - D(F(x_0)) (the red line)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure, SubFigure

from ..errors import OnnxAttrError
from .common import Style


def draw_path(fig: Figure | SubFigure, ds: xr.Dataset, style: Style) -> None:
    """Three curves over alpha = i / m of one window of a LAM result (``path_objective``, ``path_increment``,
    ``path_attribution``) into ``fig``."""
    if "path_objective" not in ds or "path_attribution" not in ds:
        raise OnnxAttrError("the result has no path curves (the plain gradient, --path gradient, has no path; a result "
                            "from before path_attribution existed lacks them); run LAM with a path to draw them")
    steps = ds["step"].values.astype(np.float64)
    alpha = steps / steps[-1] if steps[-1] > 0 else steps
    d = ds["path_objective"].values.astype(np.float64)
    cumulative = np.cumsum(ds["path_attribution"].values.astype(np.float64))
    paper = style.name == "paper"
    axes = fig.subplots(1, 3)
    lw = style.line
    axes[0].plot(alpha, d, lw=lw, marker=".", ms=2 * lw)
    axes[0].set_title("D(F(x_i))" if paper else "objective D(F(x_i)) along the path")
    axes[1].plot(alpha[1:], ds["path_increment"].values[1:], lw=lw, marker=".", ms=2 * lw, color="tab:green")
    axes[1].set_title("step size" if paper else "step size |x_i - x_(i-1)|")
    axes[2].plot(alpha, cumulative, lw=lw, marker=".", ms=2 * lw, color="tab:purple", label="sum of steps <= i")
    axes[2].axhline(d[-1] - d[0], color="red", lw=lw, label="D(F(I)) - D(F(x_0))")
    axes[2].set_title("cumulative" if paper else "cumulative attribution")
    axes[2].legend(loc="lower right", frameon=False, fontsize=style.font - (2 if paper else 0))
    for ax in axes:
        ax.set_xlabel("i / m" if paper else "alpha = i / m")
        ax.grid(alpha=0.3, lw=0.5)
