"""The GL-AM figure (Liu et al., Figs. 3-4): local and global sums over the SR image, consensus and
variation, and strips of selected per-layer maps."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure, SubFigure

from .common import as_rgb, bare, mark, psnr_note, window_sr

STRIP = 6  # per-layer maps shown per view


def overlay(background: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Red heat map (the paper's 'darker red = stronger influence') blended over an (H, W, 3) image:
    alpha = heat, so pixels without attribution show the image."""
    red = colormaps["Reds"](np.clip(heat, 0, 1))[..., :3]
    alpha = np.clip(heat, 0, 1)[..., None]
    return (1 - alpha) * background + alpha * red


def strip_indices(n: int, k: int = STRIP) -> list[int]:
    """Up to ``k`` evenly spaced indices of ``n`` layers, first and last included."""
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


def _view_row(sub: SubFigure, ds: xr.Dataset, view: str, background: np.ndarray) -> None:
    """Sum over the image, Sum, Consensus, Variation of one view ('local' or 'global')."""
    axes = sub.subplots(1, 4)
    signed = str(ds.attrs.get("variation")) == "signed"
    axes[0].imshow(overlay(background, ds[view].values), interpolation="nearest")
    if view == "local":
        mark(axes[0], window_sr(ds), color="black", lw=1)
    bare(axes[0], f"{view}: Sum over SR image")
    for ax, name, title in zip(axes[1:], ("", "_consensus", "_variation"), ("Sum", "Consensus", "Variation")):
        vmin = -1 if (signed and name == "_variation") else 0
        ax.imshow(ds[f"{view}{name}"].values, cmap="seismic" if vmin < 0 else "Reds", vmin=vmin, vmax=1, interpolation="nearest")
        bare(ax, f"{view}: {title}")


def _layer_strip(sub: SubFigure, ds: xr.Dataset, var: str, dim: str) -> None:
    """Selected per-layer maps of ``var`` along ``dim`` with node names and op types."""
    maps = ds[var]
    idx = strip_indices(maps.sizes[dim])
    axes = np.atleast_1d(sub.subplots(1, STRIP))
    op = "op_type" if dim == "layer" else "global_op_type"
    for ax, i in zip(axes, idx):
        ax.imshow(maps.isel({dim: i}).values, cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
        name = str(maps[dim].values[i])
        bare(ax, f"{i}: {name[:22]}\n{maps[op].values[i]}")
    for ax in axes[len(idx):]:
        ax.set_axis_off()
    sub.suptitle(f"{var} ({len(idx)} of {maps.sizes[dim]})", fontsize=8)


def draw(ds: xr.Dataset) -> Figure:
    """Rows: local view, global view (image + Sum overlay, Sum, Consensus, Variation), then strips of
    local and global per-layer maps. Title: model, DI of the local map (LR), attributed pixel shares."""
    background = as_rgb(ds["hr"] if "hr" in ds else ds["output"])
    fig = Figure(figsize=(11, 10.5), layout="constrained")
    rows = fig.subfigures(4, 1, height_ratios=[1, 1, 0.75, 0.75])
    _view_row(rows[0], ds, "local", background)
    _view_row(rows[1], ds, "global", background)
    _layer_strip(rows[2], ds, "local_layers", "layer")
    _layer_strip(rows[3], ds, "global_layers", "global_layer")
    fig.suptitle(
        f"GL-AM  {ds.attrs['model_file']}   window ({int(ds.window_x)}, {int(ds.window_y)}, "
        f"{int(ds.window_size)}, HR px)   DI = {float(ds['diffusion_index']):.2f}   attributed pixels: "
        f"local {100 * float(ds['attributed_share']):.1f}%, global "
        f"{100 * float(ds.attrs['global_attributed_share']):.1f}%   variation: {ds.attrs['variation']}{psnr_note(ds)}",
        fontsize=9,
    )
    return fig
