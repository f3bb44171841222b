"""The GL-AM figure (Liu et al., Figs. 3-4): local and global sums over the SR image, consensus and
variation, and strips of selected per-layer maps."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .common import (STYLES, Panel, Style, as_rgb, draw_panels, figure_for, label_of, number, panel_names, title,
                     window_sr)

STRIP = 4  # per-layer maps shown per view (overview)


def overlay(background: np.ndarray, heat: np.ndarray, cmap: str = "Reds") -> np.ndarray:
    """Red heat map (the paper's 'darker red = stronger influence') blended over an (H, W, 3) image:
    alpha = heat, so pixels without attribution show the image."""
    red = colormaps[cmap](np.clip(heat, 0, 1))[..., :3]
    alpha = np.clip(heat, 0, 1)[..., None]
    return (1 - alpha) * background + alpha * red


def strip_indices(n: int, k: int = STRIP) -> list[int]:
    """Up to ``k`` evenly spaced indices of ``n`` layers, first and last included."""
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


PANELS = tuple(f"{view}{part}" for view in ("local", "global") for part in ("_overlay", "", "_consensus", "_variation")) + (
    "local_layers", "global_layers")
DEFAULT = {"overview": PANELS, "paper": ("local_overlay", "local", "global", "local_layers")}
TITLES = {"": "Sum", "_consensus": "Consensus", "_variation": "Variation"}


def _layers(ds: xr.Dataset, var: str, k: int, cmap: str, short: bool, window: tuple[float, float, float]) -> list[Panel]:
    """``k`` evenly spaced per-layer maps of ``var`` (first and last included), titled by index and op type."""
    maps = ds[var]
    dim = maps.dims[0]
    op = maps["op_type" if dim == "layer" else "global_op_type"].values
    names = maps[dim].values
    n = maps.sizes[dim]
    return [Panel(f"{'L' if dim == 'layer' else 'G'}{i}/{n} {op[i]}" if short else f"{var} {i}/{n}: {str(names[i])[:20]}\n{op[i]}",
                  maps.isel({dim: i}).values, cmap=cmap, norm=Normalize(0, 1), label="attribution (per map / max)",
                  group="unit", window=window) for i in strip_indices(n, k)]


def draw(ds: xr.Dataset, style: Style = STYLES["overview"], panels: Sequence[str] | None = None, cmap: str | None = None) -> Figure:
    """Panels per view (local = the window, global = the whole output): the Sum over the SR image, the Sum,
    Consensus and Variation maps; then selected per-layer maps. All maps on one [0, 1] scale with one
    colorbar (signed variation: its own [-1, 1] scale). Title: DI of the local map, attributed pixel shares."""
    background = as_rgb(ds["hr"] if "hr" in ds else ds["output"])
    paper = style.name == "paper"
    heat = cmap or "Reds"
    signed = str(ds.attrs.get("variation")) == "signed"
    cols = min(style.max_columns - 1, 6) if paper else 4
    win = window_sr(ds)
    available: dict[str, Panel | list[Panel]] = {}
    for view in ("local", "global"):
        w = win  # global maps too: where the window lies orients the reader
        available[f"{view}_overlay"] = Panel(f"{view} over SR" if paper else f"{view}: Sum over SR image",
                                             overlay(background, ds[view].values, heat), window=w)
        for part, heading in TITLES.items():
            if signed and part == "_variation":
                available[view + part] = Panel(f"{view}: {heading}", ds[view + part].values, cmap="seismic", norm=Normalize(-1, 1),
                                               label="signed variation", window=w, group="signed")
            else:
                available[view + part] = Panel(f"{view}: {heading}" if not paper or part else f"{view} Sum", ds[view + part].values,
                                               cmap=heat, norm=Normalize(0, 1), label="attribution (per map / max)", window=w,
                                               group="unit")
    available["local_layers"] = _layers(ds, "local_layers", cols, heat, paper, win)
    available["global_layers"] = _layers(ds, "global_layers", cols, heat, paper, win)
    chosen: list[Panel] = []
    for name in panel_names(panels, list(available), DEFAULT[style.name]):
        item = available[name]
        if isinstance(item, list):  # a strip of layers starts a new row
            chosen += [Panel("", np.ones((1, 1, 3)))] * (-len(chosen) % cols) + item
        else:
            chosen.append(item)
    fig = figure_for(style, -(-len(chosen) // cols), cols, extra=0.3 if paper else 0.45)
    axes = draw_panels(fig, chosen, style, cols)
    for ax, p in zip(axes, chosen):
        if p.title == "" and p.data.shape == (1, 1, 3):
            ax.set_axis_off()
    di = float(ds["diffusion_index"])
    share, gshare = 100 * float(ds["attributed_share"]), 100 * float(ds.attrs["global_attributed_share"])
    title(fig, f"{label_of(ds)}: GL-AM, DI {number(di, '.2f')} %, attributed {share:.0f}% local, {gshare:.0f}% global"
                 if paper else (
        f"GL-AM  {label_of(ds)} ({ds.attrs['model_file']})   window ({int(ds.window_x)}, {int(ds.window_y)}, {int(ds.window_size)}, HR px)"
        f"   DI = {number(di, '.2f')} %   attributed pixels: local {share:.1f}%, global {gshare:.1f}%   variation: {ds.attrs['variation']}"), style)
    return fig
