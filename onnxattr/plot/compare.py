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
import re
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure, SubFigure
from scipy import stats

from ..errors import OnnxAttrError
from . import DEFAULT_DPI, save_figure
from .common import STYLES, Style, as_rgb, bare, frame, mark, style_of
from .lam import SALIENCY_CMAP, area_of_interest, upscale

PANELS = ("grid", "masking", "cka", "scatter")
ORDER_STYLE = {"attribution": dict(color="tab:blue", ls="-"), "random": dict(color="tab:orange", ls="--")}


def _short(name: str) -> str:
    return name.removesuffix(".onnx")


def _wrap(name: str, width: int) -> str:
    """Break a file name at '-', '_' or '.' into lines of about ``width`` characters."""
    lines, line = [], ""
    for part in re.split(r"(?<=[-_.])", name):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line])


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


def _caption(ds: xr.Dataset, model: str, image: str, window: int, short: bool = False) -> str:
    di = float(ds.diffusion_index.sel(model=model, image=image).isel(window=window))
    text = f"DI {di:.2f}"
    if "psnr_y" in ds:
        text += ("\n" if short else " | ") + f"PSNR {float(ds.psnr_y.sel(model=model, image=image)):.2f} dB"
    return text


def panels_of(ds: xr.Dataset, most: int = 3) -> list[tuple[str, int]]:
    """The first ``most`` (image, window index) pairs that hold a window: every image's first window,
    then every image's second, ..."""
    pairs = [(str(image), k) for k in range(ds.sizes["window"]) for image in ds.image.values
             if np.isfinite(float(ds.window_size.sel(image=image).isel(window=k)))]
    return pairs[:most]


def grid(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"], max_images: int = 3,
         cmap: str | None = None) -> None:
    """Column groups: the first ``max_images`` image x window pairs, each image with its own window. Rows: a
    reference row (HR crop with ``--hr``, LR input with the window), then one row per model with its SR crop
    (framed: it is the window), saliency (LAM's colours on [0, 1], one colorbar, the window in LR px) and area
    of interest over the upscaled LR, with DI and PSNR (Y, vs HR) under each map."""
    models, pairs = list(ds.model.values), panels_of(ds, max_images)
    axes = fig.subplots(len(models) + 1, 3 * len(pairs), squeeze=False, gridspec_kw=dict(hspace=0.5, wspace=0.08))
    seismic = colormaps["seismic"]
    im = None
    for j, (image, k) in enumerate(pairs):
        at = dict(image=image)
        size = int(ds.window_size.sel(**at).isel(window=k))
        ref = axes[0, 3 * j : 3 * j + 3]
        if "hr_crop" in ds:
            ref[0].imshow(as_rgb(ds.hr_crop.sel(**at).isel(window=k)[:, :size, :size]), interpolation="nearest")
            bare(ref[0], "HR window")
            frame(ref[0], lw=style.line)
        else:
            ref[0].axis("off")
        lr = _valid(ds.input.sel(model=models[0], **at).values)
        ref[1].imshow(as_rgb(lr), interpolation="nearest")
        mark(ref[1], _window_lr(ds, models[0], image, k), lw=style.line)
        x, y = (int(ds[c].sel(**at).isel(window=k)) for c in ("window_x", "window_y"))
        bare(ref[1], "LR input")
        ref[1].set_xlabel(f"{image}\nwindow {x},{y},{size} ({ds.attrs.get('window_frame', 'hr').upper()})", labelpad=1)
        ref[2].axis("off")
        for i, model in enumerate(models, start=1):
            row = axes[i, 3 * j : 3 * j + 3]
            scale = int(ds.scale.sel(model=model))
            lr = _valid(ds.input.sel(model=model, **at).values)
            sal = _valid(ds.saliency.sel(model=model, **at).isel(window=k).values).astype(np.float64)
            kde = seismic(area_of_interest(sal) * 0.5 + 0.5)[..., :3]
            blend = 0.5 * upscale(as_rgb(lr), scale) + 0.5 * upscale(kde, scale)
            win = _window_lr(ds, model, image, k)
            row[0].imshow(as_rgb(ds.sr_crop.sel(model=model, **at).isel(window=k)[:, :size, :size]), interpolation="nearest")
            frame(row[0], lw=style.line)
            im = row[1].imshow(sal, cmap=cmap or SALIENCY_CMAP, vmin=0, vmax=1, interpolation="nearest")
            mark(row[1], win, color="black", lw=style.line * 0.7)
            row[2].imshow(blend, interpolation="nearest")
            mark(row[2], tuple(v * scale for v in win), color="black", lw=style.line * 0.7)
            for ax, title in zip(row, ("SR", "saliency", "area of interest")):
                bare(ax, title if i == 1 else "")
            row[1].set_xlabel(_caption(ds, model, image, k), labelpad=1)
            if j == 0:
                row[0].set_ylabel(_short(model), rotation=0, ha="right", va="center")
    fig.subplots_adjust(right=0.9)
    bar = fig.colorbar(im, cax=fig.add_axes((0.92, 0.25, 0.012, 0.4)), ticks=[0, 0.5, 1])
    bar.set_label("saliency", labelpad=1)
    bar.outline.set_linewidth(0.5)
    fig.suptitle(f"{ds.attrs['attribution_method'].upper()} across models")


def grid_paper(fig: Figure | SubFigure, ds: xr.Dataset, style: Style, max_images: int = 3) -> None:
    """One column wide: a row per image x window with the HR window (with ``--hr``), the LR input with the
    window, then each model's area of interest (LAM Fig. 5) with its DI and PSNR (Y, vs HR) below."""
    models, pairs = list(ds.model.values), panels_of(ds, max_images)
    lead = 2 if "hr_crop" in ds else 1
    axes = fig.subplots(len(pairs), lead + len(models), squeeze=False)
    seismic = colormaps["seismic"]
    for i, (image, w) in enumerate(pairs):
        at = dict(image=image)
        size = int(ds.window_size.sel(**at).isel(window=w))
        row = axes[i]
        if "hr_crop" in ds:
            row[0].imshow(as_rgb(ds.hr_crop.sel(**at).isel(window=w)[:, :size, :size]), interpolation="nearest")
            frame(row[0], lw=style.line)
            bare(row[0], "HR window" if i == 0 else "")
        lr = _valid(ds.input.sel(model=models[0], **at).values)
        row[lead - 1].imshow(as_rgb(lr), interpolation="nearest")
        mark(row[lead - 1], _window_lr(ds, models[0], image, w), lw=style.line)
        bare(row[lead - 1], "LR input" if i == 0 else "")
        row[0].set_ylabel(str(image))
        for k, model in enumerate(models):
            ax = row[lead + k]
            scale = int(ds.scale.sel(model=model))
            lr = _valid(ds.input.sel(model=model, **at).values)
            sal = _valid(ds.saliency.sel(model=model, **at).isel(window=w).values).astype(np.float64)
            kde = seismic(area_of_interest(sal) * 0.5 + 0.5)[..., :3]
            ax.imshow(0.5 * upscale(as_rgb(lr), scale) + 0.5 * upscale(kde, scale), interpolation="nearest")
            mark(ax, tuple(v * scale for v in _window_lr(ds, model, image, w)), color="black", lw=style.line * 0.7)
            bare(ax, _wrap(_short(model), 12) if i == 0 else "")
            ax.set_xlabel(_caption(ds, model, image, w, short=True), labelpad=1)
    fig.suptitle(f"{ds.attrs['attribution_method'].upper()} area of interest")


def _reference(ds: xr.Dataset) -> str:
    return "hr" if "hr" in ds.reference.values else "sr"


def masking(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"], region: str = "window") -> None:
    """PSNR and SSIM rows, one column per model, mean over images and windows; random band = mean seed spread."""
    ref = _reference(ds)
    models = list(ds.model.values)
    axes = fig.subplots(2, len(models), squeeze=False, sharex=True, gridspec_kw=dict(hspace=0.15, wspace=0.35))
    pct = ds.ratio.values * 100
    for j, model in enumerate(models):
        sel = ds.sel(model=model, region=region, reference=ref)
        for i, (metric, unit) in enumerate((("psnr", " (dB)"), ("ssim", ""))):
            ax = axes[i, j]
            for order, look in ORDER_STYLE.items():
                ax.plot(pct, sel[f"mask_{metric}"].sel(order=order).mean(("image", "window")), marker="o", ms=2,
                        lw=style.line, label=order, **look)
            mean = sel[f"mask_{metric}"].sel(order="random").mean(("image", "window")).values
            spread = sel[f"mask_{metric}_random_std"].mean(("image", "window")).values
            ax.fill_between(pct, mean - spread, mean + spread, color="tab:orange", alpha=0.2, lw=0)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(metric.upper() + unit)
            if i == 0:
                ax.set_title(_short(model))
            else:
                ax.set_xlabel("mask ratio (%)")
    axes[0, 0].legend(frameon=False)
    against = "HR" if ref == "hr" else "unmasked SR"
    fig.suptitle(f"Remove-and-replace: {region} region vs {against} (Y)")


def cka(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"], cmap: str | None = None) -> None:
    """Heatmap of the CKA matrix on [0, 1] with two-decimal values in the cells; a note instead when the
    study has too few images for CKA (it is NaN: 2 images give 1 by construction)."""
    names = [_short(m) for m in ds.model.values]
    values = ds.cka.values
    kind = "debiased" if int(ds.attrs.get("cka_debiased", 0)) else "linear"
    ax = fig.subplots()
    if not np.isfinite(values).any():
        need = 4 if kind == "debiased" else 3
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"CKA ({kind}) needs at least {need} images;\nthis study has {ds.sizes['image']}.\n"
                "Run compare with more --images.", ha="center", va="center", transform=ax.transAxes)
        return
    im = ax.imshow(values, cmap=cmap or "viridis", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label("CKA")
    bar.outline.set_linewidth(0.5)
    ax.set_title(f"CKA ({kind}) of saliency maps, {ds.sizes['image']} images")


def scatter(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"]) -> None:
    """DI (x) vs PSNR (y) per model x image, model means as large markers, fitted line, Pearson/Spearman."""
    ax = fig.subplots()
    ax.set_xlabel("diffusion index")
    ax.set_ylabel("PSNR Y (dB)")
    if "psnr_y" not in ds:
        ax.text(0.5, 0.5, "no HR images: run compare with --hr", ha="center", va="center", transform=ax.transAxes)
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
        title += f": r = {r:.2f}, rho = {rho:.2f} (n = {di.size})" if style.name == "paper" else (
            f": Pearson r = {r:.2f}, Spearman rho = {rho:.2f} (n = {di.size})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)


def _sizes(ds: xr.Dataset, style: Style) -> dict[str, tuple[float, float]]:
    n_models, n_images = ds.sizes["model"], len(panels_of(ds))
    return {
        "grid": (max(4.0, 2.4 * n_images + 1.0), 1.2 * (n_models + 1) + 0.4),
        "masking": (max(3.5, 2.0 * n_models), 3.4),
        "cka": (3.5, 3.0),
        "scatter": (3.5, 3.0),
    }


def figure(ds: xr.Dataset, panel: str, style: Style = STYLES["overview"], cmap: str | None = None) -> Figure:
    """One of the four figures by name (see ``PANELS``)."""
    if panel not in PANELS:
        raise OnnxAttrError(f"panel {panel!r} not in a study figure; choose from {', '.join(PANELS)}")
    fig = Figure(figsize=_sizes(ds, style)[panel], layout="constrained" if panel != "grid" or style.name == "paper" else None)
    if panel == "grid" and style.name == "paper":
        grid_paper(fig, ds, style)
    elif panel == "grid":
        grid(fig, ds, style, cmap=cmap)
    elif panel == "cka":
        cka(fig, ds, style, cmap)
    else:
        {"masking": masking, "scatter": scatter}[panel](fig, ds, style)
    return fig


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None, cmap: str | None = None) -> Figure:
    """All four on one page (``panels`` chooses which): the grid on top, masking curves in the middle,
    CKA and the scatter below."""
    chosen = list(panels or PANELS)
    if len(chosen) == 1:
        return figure(ds, chosen[0], style, cmap)
    unknown = [p for p in chosen if p not in PANELS]
    if unknown:
        raise OnnxAttrError(f"panel(s) {', '.join(unknown)} not in a study figure; choose from {', '.join(PANELS)}")
    sizes = _sizes(ds, style)
    rows = [p for p in ("grid", "masking") if p in chosen] + ([[p for p in ("cka", "scatter") if p in chosen]]
                                                                if {"cka", "scatter"} & set(chosen) else [])
    heights = [sizes[r if isinstance(r, str) else r[0]][1] for r in rows]
    width = max(sizes["grid"][0], sizes["masking"][0], 7.0)
    fig = Figure(figsize=(width, sum(heights)))
    subs = np.atleast_1d(fig.subfigures(len(rows), 1, height_ratios=heights))
    for sub, row in zip(subs, rows):
        if row == "grid":
            grid(sub, ds, style, cmap=cmap)
        elif row == "masking":
            masking(sub, ds, style)
        else:
            parts = np.atleast_1d(sub.subfigures(1, len(row)))
            for part, name in zip(parts, row):
                cka(part, ds, style, cmap) if name == "cka" else scatter(part, ds, style)
    return fig


def save_figures(ds: xr.Dataset, path: str | os.PathLike, style: str = "overview", dpi: int = DEFAULT_DPI,
                 panels: Sequence[str] | None = None, cmap: str | None = None) -> list[Path]:
    """Write the figures next to ``path``: FIG.png -> FIG-grid.png, FIG-masking.png, ... (PNG/PDF/SVG)."""
    path = Path(path)
    st = style_of(style)
    written = []
    for panel in panels or PANELS:
        with matplotlib.rc_context(st.rc()):
            fig = figure(ds, panel, st, cmap)
        written.append(save_figure(fig, path.with_name(f"{path.stem}-{panel}{path.suffix}"), dpi, style))
    return written
