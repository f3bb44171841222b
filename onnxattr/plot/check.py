"""The figure of a check report (``onnxattr.checks``): one row per method with the trained map and the maps of
re-drawn networks (Adebayo et al. 2018, Fig. 2), the randomisation curves, the deletion and insertion curves with
their controls and AUCs (Petsiuk et al. 2018, Fig. 3), and the verdicts in words."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .common import STYLES, Style, bare, choose, label_of, mark, window_lr
from .lam import SALIENCY_CMAP

PANELS = ("maps", "randomisation", "deletion", "insertion")
DEFAULT = {"overview": PANELS, "paper": ("randomisation", "deletion", "insertion")}
SHOWN_STEPS = 3  # maps of the cascading test besides the trained one: evenly spaced, the last step among them
MEASURE_STYLE = {"spearman_abs": ("C0", "Spearman |map|"), "spearman": ("C1", "Spearman (signed)"),
                 "ssim": ("C2", "SSIM"), "top_overlap": ("C3", "top-k overlap")}
ORDER_STYLE = {"map": ("black", "map"), "random_order": ("0.55", "random order"), "random_map": ("C1", "random map")}


def shown_steps(n: int) -> list[int]:
    """Indices of the cascading steps whose maps are drawn: SHOWN_STEPS evenly spaced, ending at the last."""
    k = min(SHOWN_STEPS, n)
    return [round((j + 1) * n / k) - 1 for j in range(k)]


def region_box(region: np.ndarray, margin: int = 2) -> tuple[slice, slice]:
    """Rows and columns of the bounding box of a 0/1 ``region`` (h, w), grown by ``margin`` px."""
    rows, cols = np.nonzero(region)
    if rows.size == 0:
        return slice(None), slice(None)
    h, w = region.shape
    return (slice(max(0, rows.min() - margin), min(h, rows.max() + margin + 1)),
            slice(max(0, cols.min() - margin), min(w, cols.max() + margin + 1)))


def _maps(axes: list[Axes], m: xr.Dataset, window: int, win_lr: tuple[float, float, float], cmap, style: Style) -> None:
    """The trained saliency and shown_steps' cascading ones, on the window's influence region."""
    steps = shown_steps(m.sizes["step"])
    layers = m.sizes["step"]
    rows, cols = region_box(m.influence_region.isel(window=window).values)
    x, y, size = win_lr
    box = (x - (cols.start or 0), y - (rows.start or 0), size)
    images = [("trained", m.saliency.isel(window=window).values)]
    images += [(f"{s + 1}/{layers} layers random",
                m.randomised_saliency.sel(variant="cascading").isel(step=s, window=window).values) for s in steps]
    for ax, (title, image) in zip(axes, images):
        ax.imshow(np.nan_to_num(image[rows, cols]), cmap=cmap or SALIENCY_CMAP, norm=Normalize(0, 1),
                  interpolation="nearest")
        mark(ax, box, color="black", lw=style.line)
        bare(ax, title)
    for ax in axes[len(images):]:
        ax.set_axis_off()


def _randomisation(ax: Axes, m: xr.Dataset, threshold: float, short: bool) -> None:
    n = m.sizes["step"]
    steps = np.arange(n + 1)
    sim = m.similarity.mean("window")
    for measure, (color, label) in MEASURE_STYLE.items():
        curve = sim.sel(variant="cascading", measure=measure).values
        ax.plot(steps, np.r_[1.0, curve], color=color, marker=".", ms=3 if short else 6, lw=1, label=label)
    if "independent" in m.variant.values:
        curve = sim.sel(variant="independent", measure="spearman_abs").values
        ax.plot(steps[1:], curve, color="C0", ls="--", lw=1, label="Spearman |map|, one layer")
    ax.axhline(threshold, color="0.6", ls=":", lw=0.8)
    ax.set_ylim(min(-0.25, float(np.nanmin(sim.values, initial=0.0)) - 0.05), 1.05)  # a correlation may go to -1
    ax.set_xlim(0, n)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4 if short else "auto"))
    ax.set_xlabel("layers re-drawn" if short else "layers re-drawn (from the output)")
    ax.set_ylabel("similarity" if short else "similarity to the trained map")


def _curve(ax: Axes, m: xr.Dataset, curve: str, short: bool) -> None:
    c = m.sel(curve=curve)
    f = c.fraction.values
    for order, (color, label) in ORDER_STYLE.items():
        mean, std = c.detector.sel(order=order).mean("window").values, c.detector_std.sel(order=order).mean("window").values
        area = float(c.auc.sel(order=order).mean("window"))
        ax.plot(f, mean, color=color, lw=1.2 if order == "map" else 1,
                label=f"{area:.2f}" if short else f"{label}  AUC {area:.2f}")
        if order != "map":
            ax.fill_between(f, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.set_xlim(0, 1)
    done = "deleted" if curve == "deletion" else "restored"
    ax.set_xlabel(f"fraction {done}" if short else f"fraction of the region {done}")
    ax.set_ylabel("detector" if short else "detector (1: image, 0: baseline)")
    ax.set_title(curve, pad=2)
    ax.legend(loc="upper right" if curve == "deletion" else "lower right", frameon=False, fontsize="small",
              handlelength=0.8 if short else 1.2, title="AUC" if short else None, title_fontsize="small")


def _outcome(m: xr.Dataset) -> str:
    """'randomisation passes, deletion passes, insertion fails' (n/a where not run)."""
    words = {1.0: "passes", 0.0: "fails"}
    return ", ".join(f"{c} {words.get(float(p), 'n/a')}" for c, p in zip(m.check.values, m.passes.values))


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None,
         cmap: str | None = None, window: int = 0) -> Figure:
    """One row per method: ``maps`` (the trained saliency and SHOWN_STEPS cascading steps' of window ``window``),
    ``randomisation`` (the similarity measures against the layers re-drawn, 0: the trained map; dashed: one layer
    at a time), ``deletion`` and ``insertion`` (the map's curve and the controls' mean +- std over seeds, AUCs in
    the legend; curves and AUCs averaged over the windows); under each row its verdicts in words (the paper style:
    pass or fail in the row's title)."""
    wanted = choose({p: p for p in PANELS}, panels, DEFAULT[style.name])
    short = style.name == "paper"
    methods = list(ds.method.values)
    maps = "maps" in wanted
    plots = [p for p in wanted if p != "maps"]
    columns = (1 + SHOWN_STEPS if maps else 0) + len(plots)
    ratios = [1.0] * (1 + SHOWN_STEPS if maps else 0) + [1.6] * len(plots)
    text = 0.0 if short else 0.13 * ds.sizes["check"]
    row = style.width / sum(ratios) * 1.6 + 0.5 + text
    fig = Figure(figsize=(style.width, row * (len(methods) + (0.4 if short else 0)) + 0.4), layout="constrained")
    heights = [1.0] * (len(methods) - 1) + [1.4 if short else 1.0]  # the one-column legend goes under the last row
    subs = np.atleast_1d(fig.subfigures(len(methods), 1, height_ratios=heights))
    win = ds.isel(window=window)
    win_lr = window_lr(xr.Dataset(coords=win.coords, attrs=ds.attrs))
    legend = None
    for sub, name in zip(subs, methods):
        m = ds.sel({"method": name})
        sub.suptitle(f"{name}: {_outcome(m)}" if short else name, fontweight="bold", x=0.01, ha="left")
        if not short:
            sub.supxlabel("\n".join(dict.fromkeys(str(v) for v in m.verdict.values)), x=0.01, ha="left",
                          fontsize=style.font - 0.5)
        if not np.isfinite(m.elapsed_s):  # the method took part in no check: its line says why
            continue
        axes = list(sub.subplots(1, columns, gridspec_kw={"width_ratios": ratios}))
        if maps:
            _maps(axes[: 1 + SHOWN_STEPS], m, window, win_lr, cmap, style)
            axes = axes[1 + SHOWN_STEPS:]
        for ax, panel in zip(axes, plots):
            if panel == "randomisation":
                _randomisation(ax, m, float(ds.attrs.get("rank_threshold", 0.5)), short)
                legend = legend or (sub, ax)
            else:
                _curve(ax, m, panel, short)
    if legend is not None and not short:  # the randomisation measures' legend, once, in the first row with the panel
        legend[0].legend(*legend[1].get_legend_handles_labels(), loc="outside upper right", ncol=5, frameon=False)
    elif legend is not None:  # one column: the measures' and the orders' legend under the last row
        orders = [Line2D([], [], color=color, lw=1) for color, _ in ORDER_STYLE.values()]
        handles, labels = legend[1].get_legend_handles_labels()
        subs[-1].legend(handles + orders, labels + [label for _, label in ORDER_STYLE.values()], ncol=3,
                        loc="outside lower center", frameon=False, fontsize="small")
    n = ds.sizes["window"]
    fig.suptitle(f"{label_of(ds)}: sanity checks of {len(methods)} method(s), "
                 + (f"{n} windows (curves averaged, maps of window {window})" if n > 1 else "one window")
                 + f", {ds.sizes['step']} layers of {ds.attrs.get('parametrised_nodes')} parametrised nodes")
    return fig
