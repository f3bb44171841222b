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


def draw(ds: xr.Dataset, window: int = 0) -> Figure:
    """The figure for a result, chosen by its ``method`` attr; of a method result, the figure of
    window ``window`` (an index along the ``window`` dim)."""
    method = str(ds.attrs.get("method", ""))
    try:
        module = importlib.import_module(f"{__name__}.{method}")
    except ModuleNotFoundError as err:
        raise OnnxAttrError(f"no figure for results of method {method!r}; pass a result written by onnxattr") from err
    if method != "compare" and "window" in ds.dims:
        if not 0 <= window < ds.sizes["window"]:
            raise OnnxAttrError(f"window {window} does not exist: the result has {ds.sizes['window']} (0..{ds.sizes['window'] - 1})")
        ds = ds.isel(window=window)
    return module.draw(ds)


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write a figure atomically (temp file + rename), PNG/PDF/SVG by suffix."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise OnnxAttrError(f"figure path {str(path)!r} should end in {', '.join(FORMATS)}")
    return write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight"), "figure")


def show(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Draw ``ds`` and save it to ``path``."""
    import matplotlib.pyplot as plt

    fig = draw(ds)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)
