"""Figures of a compare result (``onnxattr.compare``): the paper-style comparison figures.

* ``grid``: per model (rows) and image x window (column groups, each image with its own window), the SR crop of
  the window, the saliency map and
  the area-of-interest overlay (LAM Fig. 5), with DI and PSNR (Y, vs HR) under each model's row.
* ``masking``: PSNR and SSIM (rows) against the mask ratio per model (columns), attribution order
  (solid) vs random order (dashed, band = mean spread over seeds), averaged over images (L2X Fig. 3a).
* ``cka``: the model x model CKA heatmap with the values in the cells (L2X Fig. 3b).
* ``scatter``: DI against PSNR per model x image, least-squares line, Pearson r and Spearman rho
  (LAM Fig. 7a).

``draw(ds)`` (what ``onnxattr show`` writes) puts the four on one figure; ``save_figures(ds, FIG.png)``
writes them as four files FIG-grid.png, FIG-masking.png, FIG-cka.png and FIG-scatter.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure, SubFigure
from scipy import stats

from . import save_figure
from .common import as_rgb, bare, mark
from .lam import _upscale, area_of_interest

PANELS = ("grid", "masking", "cka", "scatter")
FONT = 7
ORDER_STYLE = {"attribution": dict(color="tab:blue", ls="-"), "random": dict(color="tab:orange", ls="--")}


def _short(name: str) -> str:
    return name.removesuffix(".onnx")


def _valid(a: np.ndarray) -> np.ndarray:
    """Drop the NaN padding of a (..., y, x) map of a model with a smaller LR input."""
    finite = np.isfinite(a.reshape(-1, *a.shape[-2:])[0])
    h, w = int(finite.any(axis=1).sum()), int(finite.any(axis=0).sum())
    return a[..., :h, :w]


def _window_lr(ds: xr.Dataset, model: str, image: str, window: int) -> tuple[float, float, float]:
    """The window in the model's LR pixels: (X - c/2) / s."""
    m = ds.sel(model=model, image=image).isel(window=window)
    s, c = float(m.scale), float(m.offset)
    return (float(m.window_x_sr) - c / 2) / s, (float(m.window_y_sr) - c / 2) / s, float(m.window_size) / s


def _caption(ds: xr.Dataset, model: str, image: str, window: int) -> str:
    di = float(ds.diffusion_index.sel(model=model, image=image).isel(window=window))
    text = f"DI {di:.2f}"
    if "psnr_y" in ds:
        text += f" | PSNR {float(ds.psnr_y.sel(model=model, image=image)):.2f} dB"
    return text


def panels_of(ds: xr.Dataset, most: int = 3) -> list[tuple[str, int]]:
    """The first ``most`` (image, window index) pairs that hold a window: every image's first window,
    then every image's second, ..."""
    pairs = [(str(image), k) for k in range(ds.sizes["window"]) for image in ds.image.values
             if np.isfinite(float(ds.window_size.sel(image=image).isel(window=k)))]
    return pairs[:most]


def grid(fig: Figure | SubFigure, ds: xr.Dataset, max_images: int = 3) -> None:
    """Column groups: the first ``max_images`` image x window pairs, each image with its own window. Rows: a
    reference row (HR crop or none, LR input with the window), then one row per model with its SR crop,
    saliency ('seismic' on [-1, 1] as LAM) and area of interest over the upscaled LR."""
    models, pairs = list(ds.model.values), panels_of(ds, max_images)
    axes = fig.subplots(len(models) + 1, 3 * len(pairs), squeeze=False, gridspec_kw=dict(hspace=0.45, wspace=0.08))
    seismic = colormaps["seismic"]
    for j, (image, k) in enumerate(pairs):
        at = dict(image=image)
        size = int(ds.window_size.sel(**at).isel(window=k))
        ref = axes[0, 3 * j : 3 * j + 3]
        if "hr_crop" in ds:
            ref[0].imshow(as_rgb(ds.hr_crop.sel(**at).isel(window=k)[:, :size, :size]), interpolation="nearest")
            bare(ref[0], "")
            ref[0].set_xlabel("HR window", fontsize=FONT)
        else:
            ref[0].axis("off")
        lr = _valid(ds.input.sel(model=models[0], **at).values)
        ref[1].imshow(as_rgb(xr.DataArray(lr)), interpolation="nearest")
        mark(ref[1], _window_lr(ds, models[0], image, k))
        x, y = (int(ds[c].sel(**at).isel(window=k)) for c in ("window_x", "window_y"))
        bare(ref[1], f"{image} (LR)\nwindow {x},{y},{size} ({ds.attrs.get('window_frame', 'hr').upper()})")
        ref[2].axis("off")
        for i, model in enumerate(models, start=1):
            row = axes[i, 3 * j : 3 * j + 3]
            scale = int(ds.scale.sel(model=model))
            lr = _valid(ds.input.sel(model=model, **at).values)
            sal = _valid(ds.saliency.sel(model=model, **at).isel(window=k).values).astype(np.float64)
            kde = seismic(area_of_interest(sal) * 0.5 + 0.5)[..., :3]
            rgb = as_rgb(xr.DataArray(lr))
            blend = 0.5 * _upscale(rgb, scale) + 0.5 * _upscale(kde, scale)
            row[0].imshow(as_rgb(ds.sr_crop.sel(model=model, **at).isel(window=k)[:, :size, :size]), interpolation="nearest")
            row[1].imshow(sal, cmap=seismic, vmin=-1, vmax=1, interpolation="nearest")
            row[2].imshow(blend, interpolation="nearest")
            mark(row[2], tuple(v * scale for v in _window_lr(ds, model, image, k)), color="black", lw=0.8)
            for ax, title in zip(row, ("SR", "saliency", "area of interest")):
                bare(ax, title if i == 1 else "")
            row[1].set_xlabel(_caption(ds, model, image, k), fontsize=FONT)
            if j == 0:
                row[0].set_ylabel(_short(model), fontsize=FONT, rotation=0, ha="right", va="center")
    fig.suptitle(f"{ds.attrs['attribution_method'].upper()} across models", fontsize=8)


def _reference(ds: xr.Dataset) -> str:
    return "hr" if "hr" in ds.reference.values else "sr"


def masking(fig: Figure | SubFigure, ds: xr.Dataset, region: str = "window") -> None:
    """PSNR and SSIM rows, one column per model, mean over images and windows; random band = mean seed spread."""
    ref = _reference(ds)
    models = list(ds.model.values)
    axes = fig.subplots(2, len(models), squeeze=False, sharex=True, gridspec_kw=dict(hspace=0.15, wspace=0.35))
    pct = ds.ratio.values * 100
    for j, model in enumerate(models):
        sel = ds.sel(model=model, region=region, reference=ref)
        for i, (metric, unit) in enumerate((("psnr", " (dB)"), ("ssim", ""))):
            ax = axes[i, j]
            for order, style in ORDER_STYLE.items():
                ax.plot(pct, sel[f"mask_{metric}"].sel(order=order).mean(("image", "window")), marker="o", ms=2.5,
                        lw=1.2, label=order, **style)
            mean = sel[f"mask_{metric}"].sel(order="random").mean(("image", "window")).values
            spread = sel[f"mask_{metric}_random_std"].mean(("image", "window")).values
            ax.fill_between(pct, mean - spread, mean + spread, color="tab:orange", alpha=0.2, lw=0)
            ax.tick_params(labelsize=FONT - 1)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(metric.upper() + unit, fontsize=FONT)
            if i == 0:
                ax.set_title(_short(model), fontsize=FONT)
            else:
                ax.set_xlabel("mask ratio (%)", fontsize=FONT)
    axes[0, 0].legend(fontsize=FONT - 1, frameon=False)
    against = "HR" if ref == "hr" else "unmasked SR"
    fig.suptitle(f"Remove-and-replace: {region} region vs {against} (Y)", fontsize=8)


def cka(fig: Figure | SubFigure, ds: xr.Dataset) -> None:
    """Heatmap of the CKA matrix on [0, 1] with two-decimal values in the cells."""
    names = [_short(m) for m in ds.model.values]
    values = ds.cka.values
    ax = fig.subplots()
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(values):
        text = f"{v:.2f}" if np.isfinite(v) else "n/a"
        ax.text(c, r, text, ha="center", va="center", fontsize=FONT, color="white" if np.isfinite(v) and v < 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=FONT - 1)
    ax.set_yticks(range(len(names)), names, fontsize=FONT - 1)
    fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=FONT - 1)
    kind = "debiased" if int(ds.attrs.get("cka_debiased", 0)) else "linear"
    note = "" if np.isfinite(values).any() else " (needs >= 3 images)"
    ax.set_title(f"CKA ({kind}) of saliency maps over {ds.sizes['image']} images{note}", fontsize=FONT)


def scatter(fig: Figure | SubFigure, ds: xr.Dataset) -> None:
    """DI (x) vs PSNR (y) per model x image, model means as large markers, fitted line, Pearson/Spearman."""
    ax = fig.subplots()
    ax.tick_params(labelsize=FONT - 1)
    ax.set_xlabel("diffusion index", fontsize=FONT)
    ax.set_ylabel("PSNR Y (dB)", fontsize=FONT)
    if "psnr_y" not in ds:
        ax.text(0.5, 0.5, "no HR images: run compare with --hr", ha="center", va="center", transform=ax.transAxes, fontsize=FONT)
        return
    di_all, ps_all = xr.broadcast(ds.diffusion_index, ds.psnr_y)  # one point per model x image x window
    keep = np.isfinite(di_all.values)
    di, ps = di_all.values[keep], ps_all.values[keep]
    for k, model in enumerate(ds.model.values):
        color = f"C{k}"
        d, p = di_all.sel(model=model).values, ps_all.sel(model=model).values
        d, p = d[np.isfinite(d)], p[np.isfinite(d)]
        ax.scatter(d, p, s=12, color=color, alpha=0.6)
        ax.scatter(d.mean(), p.mean(), s=50, color=color, edgecolor="black", lw=0.6, label=_short(model))
    title = "DI vs PSNR"
    if di.size >= 3 and np.ptp(di) > 0:
        slope, intercept = np.polyfit(di, ps, 1)
        xs = np.linspace(di.min(), di.max(), 2)
        ax.plot(xs, slope * xs + intercept, color="gray", lw=1, ls="--")
        r, rho = stats.pearsonr(di, ps)[0], stats.spearmanr(di, ps)[0]
        title += f": Pearson r = {r:.2f}, Spearman rho = {rho:.2f} (n = {di.size})"
    ax.set_title(title, fontsize=FONT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT - 1, frameon=False)


def _sizes(ds: xr.Dataset) -> dict[str, tuple[float, float]]:
    n_models, n_images = ds.sizes["model"], len(panels_of(ds))
    return {
        "grid": (max(4.0, 2.4 * n_images + 1.0), 1.2 * (n_models + 1) + 0.4),
        "masking": (max(3.5, 2.0 * n_models), 3.4),
        "cka": (3.5, 3.0),
        "scatter": (3.5, 3.0),
    }


def figure(ds: xr.Dataset, panel: str) -> Figure:
    """One of the four figures by name (see ``PANELS``)."""
    fig = Figure(figsize=_sizes(ds)[panel], layout="constrained" if panel != "grid" else None)
    {"grid": grid, "masking": masking, "cka": cka, "scatter": scatter}[panel](fig, ds)
    return fig


def draw(ds: xr.Dataset) -> Figure:
    """All four on one figure: the grid on top, masking curves in the middle, CKA and the scatter below."""
    sizes = _sizes(ds)
    width = max(sizes["grid"][0], sizes["masking"][0], 7.0)
    heights = (sizes["grid"][1], sizes["masking"][1], sizes["cka"][1])
    fig = Figure(figsize=(width, sum(heights)))
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=heights)
    grid(top, ds)
    masking(middle, ds)
    left, right = bottom.subfigures(1, 2)
    cka(left, ds)
    scatter(right, ds)
    return fig


def save_figures(ds: xr.Dataset, path: str | os.PathLike) -> list[Path]:
    """Write the four figures next to ``path``: FIG.png -> FIG-grid.png, FIG-masking.png, ... (PNG/PDF/SVG)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    written = []
    for panel in PANELS:
        fig = figure(ds, panel)
        try:
            written.append(save_figure(fig, path.with_name(f"{path.stem}-{panel}{path.suffix}")))
        finally:
            plt.close(fig)
    return written
