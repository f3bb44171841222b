"""Figures for results: one module per method, each with ``draw(ds) -> Figure``; ``show`` dispatches."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..atomic import write_atomically  # noqa: E402
from ..errors import OnnxAttrError  # noqa: E402

FORMATS = (".png", ".pdf", ".svg")


FIGURE_METHODS = ("lam", "l2x", "glam", "compare")


def draw(ds: xr.Dataset, window: int = 0) -> Figure:
    """The figure for a result, chosen by its ``method`` attr; of a method result, the figure of
    window ``window`` (an index along the ``window`` dim). One-line errors for an unknown method or a
    result that lacks a variable or attr its figure needs."""
    method = str(ds.attrs.get("method", ""))
    if method not in FIGURE_METHODS:
        raise OnnxAttrError(
            f"no figure for results of method {method!r} (known: {', '.join(FIGURE_METHODS)}); "
            "pass a result written by onnxattr"
        )
    module = importlib.import_module(f"{__name__}.{method}")
    if method != "compare" and "window" in ds.dims:
        if not 0 <= window < ds.sizes["window"]:
            raise OnnxAttrError(f"window {window} does not exist: the result has {ds.sizes['window']} (0..{ds.sizes['window'] - 1})")
        ds = ds.isel(window=window)
    try:
        return module.draw(ds)
    except (KeyError, AttributeError) as err:  # a missing variable (ds["input"], ds.input) or attr
        text = str(err)
        if isinstance(err, AttributeError) and not text.startswith(("'Dataset' object", "'DataArray' object")):
            raise
        quoted = re.findall(r"'([^']+)'", text)
        name = (quoted[-1] if isinstance(err, AttributeError) else quoted[0]) if quoted else text
        raise OnnxAttrError(
            f"the {method} result lacks {name!r}, which its figure needs; pass a complete result written by onnxattr"
        ) from None


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
