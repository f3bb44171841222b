"""The figure of combined runs (``onnxattr.combine``): several methods, or runs, on one model, image and window,
side by side.

A reference column (the LR input with the window, the SR crop of the window with the SR output's PSNR-Y when
the runs hold the HR image), then one column per run: its saliency map |sum_c A| / max (one colour scale, LAM's
colours) and its area of interest over the upscaled LR (the LAM figure's KDE), with the run's DI (and
completeness error, where the method has one) under it. Every method's map lives on the LR input, so the
columns compare where each method says the network looks. The paper style splits many runs into pages.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure

from ..errors import OnnxAttrError
from .common import (PANEL_MIN, STYLES, Style, as_rgb, bare, chars, chunks, frame, label_of, mark, number, panel_names,
                     psnr_name, title, window_lr, window_sr, wrap)
from .lam import SALIENCY_CMAP, overlay_aoi

PANELS = ("saliency", "aoi")
BAR = 0.5  # in: the colorbar row
METHOD_NAMES = {"lam": "LAM", "l2x": "L2X", "glam": "GL-AM"}


def _run_title(ds: xr.Dataset, run: int) -> str:
    """A run's column title: its method's name ('GL-AM'), or its own label when it has one ('lam-2', 'steps 50')."""
    label = str(ds.run.values[run])
    method = str(ds.method.values[run]) if "method" in ds.coords else label
    return METHOD_NAMES.get(method, method) if label == method else label


def _one(ds: xr.Dataset, name: str) -> float:
    """A window coordinate or attr, the same in every run (coordinates of one window)."""
    v = ds[name]
    return float(v.isel(run=0) if "run" in v.dims else v)


def _caption(ds: xr.Dataset, run: int) -> str:
    r = ds.isel(run=run)
    text = f"DI {number(float(r.diffusion_index), '.1f')} %"
    if "completeness_error" in r and np.isfinite(float(r.completeness_error)):
        text += f"\ncompl. {float(r.completeness_error):.2g}"
    return text


def combined(fig: Figure | SubFigure, ds: xr.Dataset, style: Style, runs: Sequence[int], panels: Sequence[str],
             cmap: str | None, width: float) -> None:
    """The reference column and one column per run of ``runs``, rows ``panels`` (saliency, aoi), the saliency
    colorbar below; ``width`` (in) is the figure's, for wrapping the titles."""
    scale = int(ds.attrs["scale"])
    lr = as_rgb(ds["input"])
    geometry = ds.isel(run=0) if "run" in ds["window_x_sr"].dims else ds
    win = window_lr(geometry)
    x, y, size = (int(v) for v in window_sr(geometry))
    rows = len(panels)
    main, bar = fig.subfigures(2, 1, height_ratios=[_height(width, 1 + len(runs), rows) - BAR, BAR], squeeze=True)
    axes = main.subplots(rows, 1 + len(runs), squeeze=False)
    col = width / (1 + len(runs))
    axes[0, 0].imshow(lr, interpolation="nearest")
    mark(axes[0, 0], win, lw=style.line)
    bare(axes[0, 0], "LR input")
    if rows > 1:
        crop = as_rgb(ds["output"])[y : y + size, x : x + size]
        axes[1, 0].imshow(crop, interpolation="nearest")
        frame(axes[1, 0], lw=style.line * 1.5)
        psnr = ds.attrs.get("psnr_y", ds["psnr_y"].isel(run=0).item() if "psnr_y" in ds else None)  # runs' differ by rounding
        bare(axes[1, 0], "SR window")
        if psnr is not None:
            axes[1, 0].set_xlabel(f"{psnr_name(ds)}\n{float(psnr):.2f} dB", labelpad=1)
    else:
        axes[0, 0].set_xlabel(f"window {x},{y},{size} (SR px)", labelpad=1)
    for c, run in enumerate(runs, start=1):
        sal = np.asarray(ds["saliency"].isel(run=run).values, dtype=np.float64)
        for r, panel in enumerate(panels):
            ax = axes[r, c]
            if panel == "saliency":
                ax.imshow(sal, cmap=cmap or SALIENCY_CMAP, vmin=0, vmax=1, interpolation="nearest")
                mark(ax, win, color="black", lw=style.line * 0.7)
            else:
                ax.imshow(overlay_aoi(lr, sal, scale), interpolation="nearest")
                mark(ax, tuple(v * scale for v in win), color="black", lw=style.line * 0.7)
            bare(ax, wrap(_run_title(ds, run), chars(style, col)) if r == 0 else "")
            if c == 1:
                ax.set_ylabel({"saliency": "saliency", "aoi": "area of interest"}[panel], labelpad=2)
        axes[-1, c].set_xlabel(_caption(ds, run), labelpad=1)
    colorbar = bar.colorbar(ScalarMappable(Normalize(0, 1), cmap or SALIENCY_CMAP),
                            cax=bar.add_subplot(bar.add_gridspec(1, 3)[0, 1]), orientation="horizontal", ticks=[0, 0.5, 1])
    colorbar.set_label("saliency |sum_c A| / max", labelpad=1)
    colorbar.outline.set_linewidth(0.5)
    where = f"window {_one(ds, 'window_x'):g},{_one(ds, 'window_y'):g},{int(_one(ds, 'window_size'))}"
    title(fig, f"{label_of(ds)}: {where} (HR px)" if style.name == "paper" else
          f"{label_of(ds)} ({ds.attrs.get('model_file')})   {len(runs)} runs on {where} (HR px)", style, width)


def _height(width: float, columns: int, rows: int) -> float:
    """Inches for ``rows`` of square panels ``columns`` across ``width``, their titles and captions, and the bar."""
    return rows * ((width - 0.35) / columns + 0.35) + 0.3 + BAR


def per_page(style: Style) -> int:
    """Runs side by side on one paper page: as many as leave every column ``PANEL_MIN`` wide."""
    return max(1, int(style.width // PANEL_MIN) - 1)


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None,
         cmap: str | None = None) -> Figure:
    """All runs on one figure (the paper style: the first page's runs, see ``pages``)."""
    return pages(ds, style, panels, cmap)[0][1]


def pages(ds: xr.Dataset, style: Style = STYLES["paper"], panels: Sequence[str] | None = None,
          cmap: str | None = None) -> list[tuple[str, Figure]]:
    """The figure as (name, Figure) pages: one page in the overview; in the paper style at most ``per_page`` runs
    a page, pages named '1', '2', ... when there are several."""
    chosen = panel_names(panels, PANELS, PANELS, "the combined-runs figure")
    if "run" not in ds.dims:
        raise OnnxAttrError("the combined result has no run axis; pass what onnxattr.combine returned")
    n = ds.sizes["run"]
    groups = chunks(n, per_page(style)) if style.name == "paper" else [range(n)]
    out = []
    for k, group in enumerate(groups, start=1):
        width = style.width if style.name == "paper" else min(style.width, 2.6 * (1 + len(group)))
        fig = Figure(figsize=(width, _height(width, 1 + len(group), len(chosen))), layout="constrained")
        combined(fig, ds, style, list(group), chosen, cmap, width)
        out.append(("" if len(groups) == 1 else str(k), fig))
    return out
