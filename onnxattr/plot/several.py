"""Figures of several results side by side (``onnxattr show A.nc B.nc ...``).

* ERF results: the ERFs in a row (``plot.erf.side_by_side``);
* two attribution results on the same image and window: their saliency maps, their areas of interest (the KDE of
  ``plot.lam.area_of_interest``) and the difference of the two areas as LAM_Demo's ``plot_diff_of_attrs_kde(A, B)``
  draws it: v = Zb - blend (Za - Zb) / max(Za - Zb), on 'seismic' over [-1, 1] (red: B's area; blue: where A's
  area exceeds B's);
* other results: their saliency maps in a row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..errors import OnnxAttrError
from .common import Panel, Style, draw_panels, figure_for, window_lr
from .erf import side_by_side
from .lam import SALIENCY_CMAP, area_of_interest

BLEND = 0.5  # plot_diff_of_attrs_kde's default


def kde_difference(a: np.ndarray, b: np.ndarray, blend: float = BLEND) -> np.ndarray:
    """LAM_Demo ``plot_diff_of_attrs_kde``'s value map: Za, Zb the areas of interest (each / its max),
    Zb - blend (Za - Zb) / max(Za - Zb); where A's area never exceeds B's, Zb."""
    za, zb = area_of_interest(a), area_of_interest(b)
    diff = za - zb
    top = diff.max()
    return zb - blend * diff / top if top > 0 else zb


def same_image_and_window(a: xr.Dataset, b: xr.Dataset) -> str | None:
    """Why two one-window results do not explain the same image and window (None when they do)."""
    if a["input"].shape != b["input"].shape or not np.allclose(a["input"].values, b["input"].values, atol=1e-6):
        return "their LR inputs differ"
    where = [(float(ds["window_x"]), float(ds["window_y"]), float(ds["window_size"])) for ds in (a, b)]
    if where[0] != where[1]:
        return f"their windows differ ({where[0]} and {where[1]}, HR frame)"
    return None


def draw(datasets: Sequence[xr.Dataset], style: Style, cmap: str | None = None) -> Figure:
    """The figure of several one-window results (see the module docstring)."""
    methods = {str(ds.attrs.get("method")) for ds in datasets}
    if methods == {"erf"}:
        return side_by_side(datasets, style, cmap)
    if "erf" in methods or "compare" in methods:
        raise OnnxAttrError(f"show draws several results of one kind side by side, not {', '.join(sorted(methods))}; "
                            "pass ERF results together, or attribution results (lam, l2x, glam) together")
    pair = len(datasets) == 2
    names = [f"{ds.attrs['model_file']} ({ds.attrs['method']})" for ds in datasets]
    panels = [Panel(f"{'AB'[k]}\n{name}" if pair else name, np.asarray(ds["saliency"].values, dtype=np.float64),
                    cmap=cmap or SALIENCY_CMAP,
                    norm=Normalize(0, 1), label="|sum_c A| / max", window=window_lr(ds), group="saliency", ticks=[0, 0.5, 1])
              for k, (name, ds) in enumerate(zip(names, datasets))]
    title = "saliency side by side"
    if pair:
        a, b = datasets
        why = same_image_and_window(a, b)
        if why is not None:
            raise OnnxAttrError(f"the KDE difference of two results needs the same image and window, but {why}; "
                                "run both models on one image and window (the same --window in the HR frame)")
        sa, sb = (np.asarray(ds["saliency"].values, dtype=np.float64) for ds in datasets)
        win = window_lr(a)
        panels += [
            Panel("area of interest A", area_of_interest(sa), cmap=cmap or SALIENCY_CMAP, norm=Normalize(0, 1),
                  label="KDE / max", window=win, group="kde", ticks=[0, 0.5, 1]),
            Panel("area of interest B", area_of_interest(sb), cmap=cmap or SALIENCY_CMAP, norm=Normalize(0, 1),
                  label="KDE / max", window=win, group="kde", ticks=[0, 0.5, 1]),
            Panel("KDE difference (LAM_Demo)", kde_difference(sa, sb), cmap=cmap or "seismic", norm=Normalize(-1, 1),
                  label=f"Zb - {BLEND:g} (Za - Zb) / max", window=win, ticks=[-1, 0, 1]),
        ]
        title = "KDE difference of two maps (LAM_Demo plot_diff_of_attrs_kde): red B's area, blue where A's exceeds it"
    cols = min(len(panels), style.max_columns)
    fig = figure_for(style, -(-len(panels) // cols), cols, extra=0.5 if style.name == "paper" else 0.8)
    draw_panels(fig, panels, style, cols)
    fig.suptitle(title)
    return fig
