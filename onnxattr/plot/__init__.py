"""Figures for results: one module per method, each with ``draw(ds) -> Figure``; ``show`` dispatches."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..atomic import write_atomically  # noqa: E402
from ..errors import OnnxAttrError  # noqa: E402

FORMATS = (".png", ".pdf", ".svg")


def draw(ds: xr.Dataset, window: int | None = None) -> Figure:
    """The figure for a result, chosen by its ``method`` attr. A method result with several windows gives
    the atlas (``plot.atlas``) unless ``window`` (an index along ``window``) picks one window's figure."""
    method = str(ds.attrs.get("method", ""))
    try:
        module = importlib.import_module(f"{__name__}.{method}")
    except ModuleNotFoundError as err:
        raise OnnxAttrError(f"no figure for results of method {method!r}; pass a result written by onnxattr") from err
    if method == "compare" or "window" not in ds.dims:
        return module.draw(ds)
    if window is None and ds.sizes["window"] > 1:
        from .atlas import draw as atlas

        return atlas(ds)
    k = window or 0
    if not 0 <= k < ds.sizes["window"]:
        raise OnnxAttrError(f"--window {k} does not exist: the result has {ds.sizes['window']} windows (0..{ds.sizes['window'] - 1})")
    return module.draw(ds.isel(window=k))


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write a figure atomically (temp file + rename), PNG/PDF/SVG by suffix."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise OnnxAttrError(f"figure path {str(path)!r} should end in {', '.join(FORMATS)}")
    return write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight"), "figure")


def show(ds: xr.Dataset, path: str | os.PathLike, window: int | None = None) -> Path:
    """Draw ``ds`` (``draw``) and save it to ``path``."""
    import matplotlib.pyplot as plt

    fig = draw(ds, window)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)
