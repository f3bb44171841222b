"""The LAM figure (Gu & Dong 2021, Figures 1 and 5): LR input with the window, saliency, area of
interest, SR crop of the window, and the diffusion index; on request (``panels``) the signed map (LAM_Demo
``grad_norm``: sum_c A / max(max, |min|) on 'seismic' over [-1, 1]) and the path curves (``plot.path``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xarray as xr
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

from .common import (STYLES, Panel, Style, as_rgb, choose, columns_for, draw_panels, figure_for, hr_panels, label_of,
                     number, title, window_lr, window_sr)
from .path import draw_path


def area_of_interest(saliency: np.ndarray) -> np.ndarray:
    """Gaussian KDE of the pixel positions weighted by ``saliency`` (h, w), on the pixel grid, / max.

    The paper's Fig. 5-6 heat maps (scipy's ``gaussian_kde``, Scott's bandwidth); zeros for an all-zero map.
    """
    h, w = saliency.shape
    weights = np.asarray(saliency, dtype=np.float64).ravel()
    if not weights.sum() > 0:
        return np.zeros((h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    positions = np.vstack([xx.ravel(), yy.ravel()]).astype(np.float64)
    z = gaussian_kde(positions, weights=weights)(positions).reshape(h, w)
    return z / z.max()


def upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """(h, w, c) -> (s h, s w, c) bicubic, clipped to [0, 1] (the paper's LR.resize(HR.size))."""
    t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    up = torch.nn.functional.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)
    return up[0].numpy().transpose(1, 2, 0).clip(0, 1)


# The upper half of 'seismic' on [0, 1]: the authors' 'seismic' on [-1, 1] for a map that is >= 0.
SALIENCY_CMAP = ListedColormap(colormaps["seismic"](np.linspace(0.5, 1, 256)), name="seismic_upper")
PANELS = ("input", "saliency", "aoi", "sr", "hr", "signed", "path")
DEFAULT = {"overview": ("input", "saliency", "aoi", "sr", "hr"), "paper": ("input", "saliency", "aoi", "sr", "hr")}


def overlay_aoi(lr: np.ndarray, saliency: np.ndarray, scale: int) -> np.ndarray:
    """The area-of-interest panel: the KDE of ``saliency`` ('seismic' upper half) blended 50/50 over the bicubic
    upscale of the LR image ``lr`` (h, w, 3): the LAM code's figure, (s h, s w, 3)."""
    kde = colormaps["seismic"](area_of_interest(saliency) * 0.5 + 0.5)[..., :3]
    return 0.5 * upscale(lr, scale) + 0.5 * upscale(kde, scale)


def signed_map(attribution: np.ndarray) -> np.ndarray:
    """LAM_Demo ``grad_norm``: s = sum_c A, s / max(max s, |min s|), in [-1, 1] (zero stays zero)."""
    s = np.asarray(attribution, dtype=np.float64).sum(axis=0)
    peak = max(s.max(), -s.min())
    return s / peak if peak > 0 else s


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None, cmap: str | None = None) -> Figure:
    """Panels: LR input + window (LR pixels), saliency |sum_c A| / max ('seismic' on [-1, 1] as the
    authors' code; its colorbar), area of interest (KDE, 'seismic', alpha 0.5 over the bicubic-upscaled
    LR), SR crop of the window and, with HR in the result, the HR crop and the SR's PSNR."""
    scale = int(ds.attrs["scale"])
    lr = as_rgb(ds["input"])
    sal = np.asarray(ds["saliency"].values, dtype=np.float64)
    win_lr = window_lr(ds)
    x, y, size = (int(v) for v in window_sr(ds))
    blend = overlay_aoi(lr, sal, scale)
    paper = style.name == "paper"
    available = {
        "input": Panel("LR input" if paper else f"LR input {lr.shape[1]}x{lr.shape[0]}, window (LR px)", lr, window=win_lr),
        "saliency": Panel("saliency" if paper else f"saliency |LAM| ({ds.attrs.get('path', 'lam')}, m={ds.attrs.get('steps')})",
                          sal, cmap=cmap or SALIENCY_CMAP, norm=Normalize(0, 1), label="|sum_c A| / max", window=win_lr,
                          ticks=[0, 0.5, 1]),
        "aoi": Panel("area of interest" if paper else "area of interest (KDE)", blend, window=tuple(v * scale for v in win_lr)),
        **hr_panels(ds, x, y, size, short=paper),
        "signed": Panel("signed" if paper else "signed sum_c A / max |.| (grad_norm)", signed_map(ds["attribution"].values),
                        cmap=cmap or "seismic", norm=Normalize(-1, 1), label="sum_c A / max |sum_c A|", window=win_lr,
                        ticks=[-1, 0, 1]),
    }
    wanted = list(panels or [])
    images = [n for n in wanted if n != "path"]
    chosen = choose(available, images, DEFAULT[style.name]) if images or not wanted else []
    cols = columns_for(len(chosen), style.max_columns) if chosen else 1
    fig = figure_for(style, -(-len(chosen) // cols), cols, extra=0.35 if paper else 0.6)
    if "path" not in wanted:
        draw_panels(fig, chosen, style, cols)
    else:  # the image panels above a row of the three path curves
        top, curves = (fig.get_figheight() if chosen else 0.25), style.width / 3 + 0.5
        fig.set_figheight(top + curves)
        parts = fig.subfigures(2, 1, height_ratios=[top, curves])
        if chosen:
            draw_panels(parts[0], chosen, style, cols)
        draw_path(parts[1], ds, style)
    di, comp = float(ds["diffusion_index"]), float(ds["completeness_error"])
    title(fig, f"{label_of(ds)}: LAM, DI {number(di, '.2f')} %" if paper else (
        f"{label_of(ds)} ({ds.attrs['model_file']})   LAM   DI = {number(di, '.2f')} %   "
        f"completeness error {number(comp, '.2g')}"), style)
    return fig
