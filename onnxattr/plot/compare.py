"""Figures of a compare result (``onnxattr.compare``): the comparison figures of the papers.

* ``grid`` (LAM Fig. 5): one block per image x window (each image with its own window): the image with the window
  box and the HR crop once, then per model (by its label) a row with its SR crop of the window, the saliency map
  and the area of interest over the upscaled LR, with "DI | PSNR-Y" under it.
* ``masking`` (L2X Fig. 3a): PSNR and SSIM against the mask ratio per model, attribution order (solid) vs random
  order (dashed, band = mean spread over seeds), averaged over images and windows; flat windows (zero
  attribution, whose order means nothing) are left out and named.
* ``cka`` (L2X Fig. 3b): the model x model CKA heatmap with the values in the cells.
* ``scatter`` (LAM Fig. 7a): DI against PSNR-Y per model x image x window, least-squares line, Pearson r and
  Spearman rho.

``draw(ds)`` (what ``onnxattr show`` writes in the overview style) puts the four on one figure; ``pages(ds, style)``
gives the paper figures, each at the journal column's width: one per panel, and a grid or masking figure too tall
for a page splits into pages named in order (grid-1, grid-2, ...). ``save_figures(ds, FIG.png)`` writes them as
FIG-grid.png, FIG-masking.png, FIG-cka.png and FIG-scatter.png.
"""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from ..study.assemble import flat_cells
from . import DEFAULT_DPI, named, save_figure
from .common import STYLES, Style, as_rgb, bare, chars, chunks, frame, mark, number, panel_names, style_of, wrap
from .lam import SALIENCY_CMAP, overlay_aoi

PANELS = ("grid", "masking", "cka", "scatter")
ORDER_STYLE = {"attribution": dict(color="tab:blue", ls="-"), "random": dict(color="tab:orange", ls="--")}
OVERVIEW_PAIRS = 3  # image x window blocks of the overview grid (the paper grid draws them all, over pages)
BAR = 0.45  # in: the colorbar row under a grid page
Draw = Callable[[Figure | SubFigure], None]


@dataclass(frozen=True)
class Page:
    """One figure of a study: its name (FIG-NAME.pdf), its height (in) at the style's width, and what draws it."""

    name: str
    height: float
    draw: Draw


# ------------------------------------------------------------------ what the figures read
def labels(ds: xr.Dataset) -> list[str]:
    """Each model's label (the ``label`` coordinate; studies of older versions: file names without .onnx)."""
    if "label" in ds.coords:
        return [str(v) for v in ds.label.values]
    return [str(m).removesuffix(".onnx") for m in ds.model.values]


def _valid(a: np.ndarray) -> np.ndarray:
    """Drop the NaN padding of a (..., y, x) map of a model with a smaller LR input."""
    finite = np.isfinite(a.reshape(-1, *a.shape[-2:])[0])
    h, w = int(finite.any(axis=1).sum()), int(finite.any(axis=0).sum())
    return a[..., :h, :w]


def _window_lr(ds: xr.Dataset, i: int, image: str, window: int) -> tuple[float, float, float]:
    """The window in model ``i``'s LR pixels: (X - c/2) / s."""
    m = ds.isel(model=i).sel(image=image).isel(window=window)
    s, c = float(m.scale), float(m.offset)
    return (float(m.window_x_sr) - c / 2) / s, (float(m.window_y_sr) - c / 2) / s, float(m.window_size) / s


def caption(ds: xr.Dataset, i: int, image: str, window: int) -> str:
    """'DI 12.3 % | PSNR-Y 28.41 dB' of model ``i`` on an image x window ('DI n/a (zero map)' for a flat one)."""
    di = float(ds.diffusion_index.isel(model=i).sel(image=image).isel(window=window))
    text = f"DI {number(di, '.1f')} %" if np.isfinite(di) else "DI n/a (zero map)"
    if "psnr_y" in ds:
        name = "PSNR-Y" if ds.sizes["channel"] == 3 else "PSNR"
        text += f" | {name} {number(float(ds.psnr_y.isel(model=i).sel(image=image)), '.2f')} dB"
    return text


def pairs_of(ds: xr.Dataset, most: int | None = None) -> list[tuple[str, int]]:
    """The (image, window index) pairs that hold a window, every image's first window, then every image's second,
    ...; the first ``most`` of them."""
    pairs = [(str(image), k) for k in range(ds.sizes["window"]) for image in ds.image.values
             if np.isfinite(float(ds.window_size.sel(image=image).isel(window=k)))]
    return pairs[:most]


def window_text(ds: xr.Dataset, image: str, k: int) -> str:
    w = ds.sel(image=image).isel(window=k)
    return f"window {int(w.window_x)},{int(w.window_y)},{int(w.window_size)} ({ds.attrs.get('window_frame', 'hr').upper()} px)"


# ------------------------------------------------------------------ grid
SIDE_MIN = 0.8  # in: a paper grid's panels shrink down to this to fit more blocks on a page


def _grid_geometry(style: Style, block_width: float, side: float | None = None) -> tuple[float, float, float]:
    """(panel side, height of a model row, height of the block's header row) in inches for a block this wide
    (``side``: smaller panels than the width allows)."""
    side = min(1.25, (block_width - 0.3) / 3, side or np.inf)
    return side, side + (0.2 if style.name == "paper" else 0.25), side + 0.45


def block(sub: Figure | SubFigure, ds: xr.Dataset, pair: tuple[str, int], models: Sequence[int], style: Style,
          cmap: str | None, width: float) -> ScalarMappable:
    """One image x window: a header row with the image (the first model's LR input) and the window box, and the HR
    crop of the window; then per model a row: SR crop (framed: it is the window), saliency (the window in black)
    and area of interest, the model's label at the left and "DI | PSNR-Y" under the saliency. ``width``: the
    block's width (in), for wrapping its texts."""
    image, k = pair
    names = labels(ds)
    size = int(ds.window_size.sel(image=image).isel(window=k))
    axes = sub.subplots(1 + len(models), 3, squeeze=False)
    head = axes[0]
    lr = _valid(ds.input.isel(model=models[0]).sel(image=image).values)
    head[0].imshow(as_rgb(lr), interpolation="nearest")
    mark(head[0], _window_lr(ds, models[0], image, k), lw=style.line)
    bare(head[0], wrap(image, chars(style, width / 3 * 1.9)))
    if "hr_crop" in ds:
        head[1].imshow(as_rgb(ds.hr_crop.sel(image=image).isel(window=k)[:, :size, :size]), interpolation="nearest")
        frame(head[1], lw=style.line)
        bare(head[1], "HR")
    else:
        head[1].set_axis_off()
    head[2].set_axis_off()
    psnr = f" | {'PSNR-Y' if ds.sizes['channel'] == 3 else 'PSNR'}" if "psnr_y" in ds else ""
    method = str(ds.attrs.get("attribution_method", "")).upper()
    where = window_text(ds, image, k).replace(" (", "\n(")
    head[2].text(0.0, 0.5, f"{method}\n{where}\n\nunder each model:\nDI{psnr}", transform=head[2].transAxes,
                 ha="left", va="center")
    shown = None
    for row, i in zip(axes[1:], models):
        at = ds.isel(model=i).sel(image=image)
        scale = int(at.scale)
        sal = _valid(at.saliency.isel(window=k).values).astype(np.float64)
        win = _window_lr(ds, i, image, k)
        row[0].imshow(as_rgb(at.sr_crop.isel(window=k)[:, :size, :size]), interpolation="nearest")
        frame(row[0], lw=style.line)
        shown = row[1].imshow(sal, cmap=cmap or SALIENCY_CMAP, vmin=0, vmax=1, interpolation="nearest")
        mark(row[1], win, color="black", lw=style.line * 0.7)
        row[2].imshow(overlay_aoi(as_rgb(_valid(at.input.values)), sal, scale), interpolation="nearest")
        mark(row[2], tuple(v * scale for v in win), color="black", lw=style.line * 0.7)
        for ax, title in zip(row, ("SR", "saliency", "area of interest")):
            bare(ax, title if i == models[0] else "")
        row[0].set_ylabel(wrap(names[i], chars(style, 1.1)), labelpad=2)
        row[1].set_xlabel(caption(ds, i, image, k), labelpad=1)
    return shown  # type: ignore[return-value]


def _saliency_bar(sub: Figure | SubFigure, mappable: ScalarMappable) -> None:
    """The saliency colorbar, horizontal, in the middle third of ``sub``."""
    bar = sub.colorbar(mappable, cax=sub.add_subplot(sub.add_gridspec(1, 3)[0, 1]), orientation="horizontal",
                       ticks=[0, 0.5, 1])
    bar.set_label("saliency |sum_c A| / max", labelpad=1)
    bar.outline.set_linewidth(0.5)
    bar.ax.tick_params(length=2, width=0.5)


def grid(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"], cmap: str | None = None,
         pairs: Sequence[tuple[str, int]] | None = None, models: Sequence[int] | None = None, per_row: int | None = None,
         width: float | None = None, side: float | None = None) -> None:
    """Blocks (``block``) of ``pairs`` (default: the overview's first ``OVERVIEW_PAIRS``) for ``models`` (default all),
    ``per_row`` side by side (default: all of them), then the saliency colorbar; ``width``: the figure's (in,
    default the style's), ``side``: the panels' (in, default what the width allows)."""
    pairs = list(pairs if pairs is not None else pairs_of(ds, OVERVIEW_PAIRS))
    models = list(models if models is not None else range(ds.sizes["model"]))
    per_row = per_row or len(pairs)
    rows = -(-len(pairs) // per_row)
    width = (width or style.width) / per_row
    side, row_h, head_h = _grid_geometry(style, width, side)
    block_h = head_h + len(models) * row_h
    parts = fig.subfigures(rows + 1, 1, height_ratios=[block_h] * rows + [BAR], squeeze=False)[:, 0]
    mappable = None
    for r in range(rows):
        cells = parts[r].subfigures(1, per_row, squeeze=False)[0]
        for c, cell in enumerate(cells):
            n = r * per_row + c
            if n < len(pairs):
                mappable = block(cell, ds, pairs[n], models, style, cmap, width)
    _saliency_bar(parts[-1], mappable or ScalarMappable(Normalize(0, 1), cmap or SALIENCY_CMAP))
    if style.name != "paper":
        fig.suptitle(f"{ds.attrs['attribution_method'].upper()} across models")


def _grid_layout(ds: xr.Dataset, style: Style, per_row: int, side: float | None) -> list[tuple[list[int], list[range]]]:
    """Model groups and, per group, the chunks of image x window pairs that fit a page with panels of ``side``."""
    _, row_h, head_h = _grid_geometry(style, style.width / per_row, side)
    room = style.max_height - BAR
    out = []
    for group in chunks(ds.sizes["model"], max(1, int((room - head_h) // row_h))):
        blocks = per_row * max(1, int(room // (head_h + len(group) * row_h)))
        out.append((list(group), chunks(len(pairs_of(ds)), blocks)))
    return out


def grid_pages(ds: xr.Dataset, style: Style, cmap: str | None) -> list[Page]:
    """The paper grid: every image x window, blocks of ``block`` stacked (two side by side at double width), as many
    models and blocks per page as ``style.max_height`` holds, the panels shrunk to ``SIDE_MIN`` where that saves
    pages; pages in order (images outer, models inner)."""
    per_row = max(1, int(style.width // 3.3))
    layouts = {side: _grid_layout(ds, style, per_row, side) for side in (None, SIDE_MIN)}
    count = {side: sum(len(chunked) for _, chunked in layout) for side, layout in layouts.items()}
    side = None if count[None] <= count[SIDE_MIN] else SIDE_MIN
    _, row_h, head_h = _grid_geometry(style, style.width / per_row, side)
    everything = pairs_of(ds)
    pages = []
    for group, chunked in layouts[side]:
        for pair_group in chunked:
            pairs = [everything[n] for n in pair_group]
            rows = -(-len(pairs) // per_row)

            def draw(fig, pairs=pairs, group=group):
                across = min(per_row, len(pairs))
                grid(fig, ds, style, cmap, pairs, group, across, width=style.width / per_row * across, side=side)

            pages.append(Page("grid", rows * (head_h + len(group) * row_h) + BAR, draw))
    return pages


# ------------------------------------------------------------------ masking
def _reference(ds: xr.Dataset) -> str:
    return "hr" if "hr" in ds.reference.values else "sr"


def flat_note(ds: xr.Dataset, flat: np.ndarray, models: Sequence[int], width: int) -> str:
    """'left out: ...' naming the flat cells of ``models`` (image x window, with their models unless all), wrapped at
    ``width`` characters."""
    names = labels(ds)
    parts = []
    for j, image in enumerate(ds.image.values):
        for k in range(ds.sizes["window"]):
            who = [names[i] for i in models if flat[i, j, k]]
            if who:
                whose = "" if len(who) == len(models) else f" ({', '.join(who)})"
                parts.append(f"{image} {window_text(ds, str(image), k).removeprefix('window ')}{whose}")
    return textwrap.fill("left out, zero attribution (flat window): " + "; ".join(parts), width)


def note_height(note: str) -> float:
    """Inches for a note of this many lines at 7-8 pt."""
    return 0.14 * (note.count("\n") + 1) + 0.08


def masking(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"], region: str = "window",
            models: Sequence[int] | None = None, per_row: int | None = None) -> None:
    """PSNR and SSIM rows for ``models`` (default all), ``per_row`` models side by side (then the next ones below),
    mean over images and windows, flat windows left out and named; random band = mean seed spread."""
    ref = _reference(ds)
    names = labels(ds)
    models = list(models if models is not None else range(ds.sizes["model"]))
    per_row = per_row or len(models)
    groups = -(-len(models) // per_row)
    flat = flat_cells(ds)
    if flat[models].any():  # named under the curves, in a row of its own
        note = flat_note(ds, flat, models, chars(style, style.width if style.name == "paper" else 7.0))
        fig, foot = fig.subfigures(2, 1, height_ratios=[2 * groups * 0.95 + 0.5, note_height(note)])
        foot.text(0.5, 0.5, note, ha="center", va="center")
    axes = fig.subplots(2 * groups, per_row, squeeze=False, sharex=True)
    pct = ds.ratio.values * 100
    keep = xr.DataArray(~flat, dims=("model", "image", "window"))
    for n, i in enumerate(models):
        g, j = divmod(n, per_row)
        sel = ds.isel(model=i).sel(region=region, reference=ref)
        ok = keep.isel(model=i)
        for r, (metric, unit) in enumerate((("psnr", " (dB)"), ("ssim", ""))):
            ax = axes[2 * g + r, j]
            curves = sel[f"mask_{metric}"].where(ok)
            for order, look in ORDER_STYLE.items():
                ax.plot(pct, curves.sel(order=order).mean(("image", "window")), marker="o", ms=2, lw=style.line,
                        label=order, **look)
            mean = curves.sel(order="random").mean(("image", "window")).values
            spread = sel[f"mask_{metric}_random_std"].where(ok).mean(("image", "window")).values
            ax.fill_between(pct, mean - spread, mean + spread, color="tab:orange", alpha=0.2, lw=0)
            ax.grid(alpha=0.3)
            ax.yaxis.set_major_locator(MaxNLocator(3 if style.name == "paper" else 6))
            if j == 0:
                ax.set_ylabel(metric.upper() + unit)
            if r == 0:
                ax.set_title(wrap(names[i], chars(style, style.width / per_row)))
            if r == 1:
                ax.set_xlabel("mask ratio (%)")
    for n in range(len(models), groups * per_row):
        g, j = divmod(n, per_row)
        axes[2 * g, j].set_axis_off()
        axes[2 * g + 1, j].set_axis_off()
    if style.name == "paper":
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2, frameon=False)
    else:
        axes[0, 0].legend(frameon=False)
    against = "HR" if ref == "hr" else "unmasked SR"
    fig.suptitle(f"Masking: {region} region vs {against} (Y)" if style.name == "paper" else
                 f"Remove-and-replace: {region} region vs {against} (Y)")


def masking_pages(ds: xr.Dataset, style: Style) -> list[Page]:
    """The paper masking figure: a model per 1.1 in side by side (3 in a column, 6 in two), the next models in rows
    below, split into pages when taller than ``style.max_height``."""
    per_row = min(ds.sizes["model"], max(2, int(style.width // 1.1)))
    row_h = 2 * 0.95
    cells = flat_cells(ds)
    flat = note_height(flat_note(ds, cells, range(ds.sizes["model"]), chars(style, style.width))) if cells.any() else 0.0
    per_page = max(1, int((style.max_height - 0.4 - flat) // row_h)) * per_row
    pages = []
    for group in chunks(ds.sizes["model"], per_page):
        groups = -(-len(group) // per_row)

        def draw(fig, group=group):
            masking(fig, ds, style, models=list(group), per_row=per_row)

        pages.append(Page("masking", groups * row_h + 0.4 + flat, draw))
    return pages


# ------------------------------------------------------------------ CKA and scatter
def cka(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"], cmap: str | None = None) -> None:
    """Heatmap of the CKA matrix on [0, 1] with two-decimal values in the cells; a note instead when the
    study has too few images for CKA (it is NaN: 2 images give 1 by construction)."""
    names = [wrap(n, 14) for n in labels(ds)]
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
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 3 else 0)
    ax.set_yticks(range(len(names)), names)
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.set_label("CKA")
    bar.outline.set_linewidth(0.5)
    maps = int(np.isfinite(ds.window_size.values).sum())
    ax.set_title(f"CKA ({kind}), {maps} saliency maps" if style.name == "paper" else
                 f"CKA ({kind}) of saliency maps, {maps} maps ({ds.sizes['image']} images)")


def scatter(fig: Figure | SubFigure, ds: xr.Dataset, style: Style = STYLES["overview"]) -> None:
    """DI (x) vs PSNR-Y (y) per model x image x window, model means as large markers, fitted line,
    Pearson/Spearman."""
    ax = fig.subplots()
    ax.set_xlabel("diffusion index DI (%)")
    ax.set_ylabel("PSNR-Y (dB)" if ds.sizes["channel"] == 3 else "PSNR (dB)")
    if "psnr_y" not in ds:
        ax.text(0.5, 0.5, "no HR images: run compare with --hr", ha="center", va="center", transform=ax.transAxes)
        return
    di_all, ps_all = xr.broadcast(ds.diffusion_index, ds.psnr_y)  # one point per model x image x window
    keep = np.isfinite(di_all.values)
    di, ps = di_all.values[keep], ps_all.values[keep]
    for k, name in enumerate(labels(ds)):
        color = f"C{k}"
        d, p = di_all.isel(model=k).values, ps_all.isel(model=k).values
        d, p = d[np.isfinite(d)], p[np.isfinite(d)]
        ax.scatter(d, p, s=12, color=color, alpha=0.6)
        ax.scatter(d.mean() if d.size else np.nan, p.mean() if p.size else np.nan, s=50, color=color,
                   edgecolor="black", lw=0.6, label=name)
    title = "DI vs PSNR-Y"
    if di.size >= 3 and np.ptp(di) > 0:
        slope, intercept = np.polyfit(di, ps, 1)
        xs = np.linspace(di.min(), di.max(), 2)
        ax.plot(xs, slope * xs + intercept, color="gray", lw=1, ls="--")
        r, rho = stats.pearsonr(di, ps)[0], stats.spearmanr(di, ps)[0]
        title += f": r = {r:.2f}, rho = {rho:.2f} (n = {di.size})" if style.name == "paper" else (
            f": Pearson r = {r:.2f}, Spearman rho = {rho:.2f} (n = {di.size})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if style.name == "paper":
        fig.legend(loc="outside lower center", ncol=min(3, ds.sizes["model"]), frameon=False)
    else:
        ax.legend(frameon=False)


# ------------------------------------------------------------------ pages and files
def _legend_rows(ds: xr.Dataset) -> int:
    return math.ceil(ds.sizes["model"] / 3)


def pages(ds: xr.Dataset, style: Style = STYLES["paper"], panels: Sequence[str] | None = None,
          cmap: str | None = None) -> list[tuple[str, Figure]]:
    """The paper figures of ``panels`` (default all four) as (name, Figure): 'grid', 'masking', 'cka', 'scatter',
    numbered 'grid-1', 'grid-2', ... where a panel takes several pages."""
    chosen = panel_names(panels, PANELS, PANELS, "a study figure")
    out = []
    for panel in chosen:
        made = panel_pages(ds, panel, style, cmap)
        for n, page in enumerate(made, start=1):
            fig = Figure(figsize=(style.width, page.height), layout="constrained")
            page.draw(fig)
            out.append((page.name if len(made) == 1 else f"{page.name}-{n}", fig))
    return out


def panel_pages(ds: xr.Dataset, panel: str, style: Style, cmap: str | None) -> list[Page]:
    """The pages of one panel in ``style``: the overview draws each on one page."""
    if panel == "grid":
        if style.name == "paper":
            return grid_pages(ds, style, cmap)
        side, row_h, head_h = _grid_geometry(style, style.width / max(1, len(pairs_of(ds, OVERVIEW_PAIRS))))
        return [Page("grid", head_h + ds.sizes["model"] * row_h + BAR + 0.3, lambda fig: grid(fig, ds, style, cmap))]
    if panel == "masking":
        if style.name == "paper":
            return masking_pages(ds, style)
        return [Page("masking", 3.4, lambda fig: masking(fig, ds, style))]
    if panel == "cka":
        height = 0.8 * min(style.width, 4.5) + 0.1 * min(14, max(len(n) for n in labels(ds)))
        if not np.isfinite(ds.cka.values).any():
            height = 1.0  # the note that the study has too few maps
        return [Page("cka", height if style.name == "paper" else 3.4, lambda fig: cka(fig, ds, style, cmap))]
    return [Page("scatter", 0.75 * style.width + 0.15 * _legend_rows(ds) if style.name == "paper" else 3.4,
                 lambda fig: scatter(fig, ds, style))]


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None, cmap: str | None = None) -> Figure:
    """The chosen panels (default all four) on one figure, one below the other (the overview: CKA and the scatter
    side by side); in the paper style each panel's first page."""
    chosen = panel_names(panels, PANELS, PANELS, "a study figure")
    rows: list[list[Page]] = []
    for panel in chosen:
        page = panel_pages(ds, panel, style, cmap)[0]
        if style.name != "paper" and panel == "scatter" and rows and rows[-1][0].name == "cka":
            rows[-1].append(page)
        else:
            rows.append([page])
    heights = [max(p.height for p in row) for row in rows]
    width = style.width if style.name == "paper" else max(style.width, 7.0)
    fig = Figure(figsize=(width, sum(heights)), layout="constrained")
    if len(rows) == 1 and len(rows[0]) == 1:
        rows[0][0].draw(fig)
        return fig
    subs = fig.subfigures(len(rows), 1, height_ratios=heights, squeeze=False)[:, 0]
    for sub, row in zip(subs, rows):
        parts = sub.subfigures(1, len(row), squeeze=False)[0]
        for part, page in zip(parts, row):
            page.draw(part)
    return fig


def save_figures(ds: xr.Dataset, path: str | os.PathLike, style: str = "overview", dpi: int = DEFAULT_DPI,
                 panels: Sequence[str] | None = None, cmap: str | None = None, width: str | None = None) -> list[Path]:
    """Write the figures next to ``path``: FIG.png -> FIG-grid.png, FIG-masking.png, ... (PNG/PDF/SVG); in the paper
    style a panel taking several pages gives FIG-grid-1.png, FIG-grid-2.png, ..."""
    st = style_of(style, width)
    path = Path(path)
    written = []
    with matplotlib.rc_context(st.rc()):
        if st.name == "paper":
            made = pages(ds, st, panels, cmap)
        else:
            made = []
            for panel in panel_names(panels, PANELS, PANELS, "a study figure"):
                page = panel_pages(ds, panel, st, cmap)[0]
                fig = Figure(figsize=(st.width if panel == "grid" else 7.0, page.height), layout="constrained")
                page.draw(fig)
                made.append((panel, fig))
    for name, fig in made:
        written.append(save_figure(fig, named(path, name), dpi, st))
    return written
