"""The LAM figure (Gu & Dong 2021, Figures 1 and 5): LR input with the window, saliency, area of
interest, SR crop of the window, and the diffusion index."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

from .common import as_rgb, bare, mark, psnr_note, window_lr, window_sr


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


def _upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """(h, w, c) -> (s h, s w, c) bicubic, clipped to [0, 1] (the paper's LR.resize(HR.size))."""
    t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    up = torch.nn.functional.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)
    return up[0].numpy().transpose(1, 2, 0).clip(0, 1)


def draw(ds: xr.Dataset) -> Figure:
    """Four panels: LR input + window (LR pixels), saliency |sum_c A| / max ('seismic' on [-1, 1] as the
    authors' code), area of interest (KDE, 'seismic', alpha 0.5 over the bicubic-upscaled LR), SR crop;
    a fifth with the HR crop of the window, and the PSNR in the title, when the result holds ``hr``."""
    scale = int(ds.attrs["scale"])
    lr = as_rgb(ds["input"])
    sal = np.asarray(ds["saliency"].values, dtype=np.float64)
    win_lr = window_lr(ds)
    x, y, size = (int(v) for v in window_sr(ds))

    seismic = colormaps["seismic"]
    kde = seismic(area_of_interest(sal) * 0.5 + 0.5)[..., :3]
    blend = 0.5 * _upscale(lr, scale) + 0.5 * _upscale(kde, scale)

    panels = 5 if "hr" in ds else 4
    fig = Figure(figsize=(2.75 * panels, 3.2))
    axes = fig.subplots(1, panels)
    axes[0].imshow(lr, interpolation="nearest")
    mark(axes[0], win_lr)
    bare(axes[0], f"LR input {lr.shape[1]}x{lr.shape[0]}, window (LR px)")
    axes[1].imshow(sal, cmap=seismic, vmin=-1, vmax=1, interpolation="nearest")
    bare(axes[1], f"saliency |LAM| ({ds.attrs.get('path', 'lam')}, m={ds.attrs.get('steps')})")
    axes[2].imshow(blend, interpolation="nearest")
    mark(axes[2], tuple(v * scale for v in win_lr), color="black", lw=1)
    bare(axes[2], "area of interest (KDE)")
    axes[3].imshow(as_rgb(ds["output"])[y : y + size, x : x + size], interpolation="nearest")
    bare(axes[3], f"SR window {size}x{size} at ({x}, {y}) (SR px)")
    if "hr" in ds:
        axes[4].imshow(as_rgb(ds["hr"])[y : y + size, x : x + size], interpolation="nearest")
        bare(axes[4], f"HR window at ({int(ds.window_x)}, {int(ds.window_y)}) (HR px)")
    fig.suptitle(
        f"{ds.attrs['model_file']}   DI = {float(ds['diffusion_index']):.2f}   "
        f"completeness error {float(ds['completeness_error']):.2g}{psnr_note(ds)}",
        fontsize=9,
    )
    return fig
