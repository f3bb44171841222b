"""Figures for results: one module per method, each with ``draw(ds, style, panels, cmap) -> Figure`` (the
method registry names it), ``compare`` for studies; ``show`` dispatches and saves. Importing this package never changes matplotlib's backend: figures are
``matplotlib.figure.Figure`` objects, which save without pyplot (in Jupyter, ``draw(ds)`` displays inline).

``style``: ``overview`` (a screen page) or ``paper`` (one 3.4 in journal column, 7 pt text; save as
.pdf for a vector figure). ``panels``: names of the panels to draw, in order (each module's
``PANELS``). ``cmap``: a matplotlib colormap for the attribution maps instead of the method's own.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Sequence

import matplotlib
import xarray as xr
from matplotlib.figure import Figure

from ..errors import OnnxAttrError
from ..methods.registry import METHODS
from ..options import DEFAULT_DPI, FORMATS
from ..paths import write_atomically
from .common import STYLES, style_of

STUDY = "compare"  # the ``method`` attr of a study, drawn by ``plot.compare``
CHECK = "check"  # the ``method`` attr of a check report (``onnxattr.checks``), drawn by ``plot.check``


def _module(ds: xr.Dataset):
    """The figure module of a result: its method's (``methods.registry``), ``plot.compare`` for a study or
    ``plot.check`` for a check report."""
    method = str(ds.attrs.get("method", ""))
    if method in (STUDY, CHECK):
        return importlib.import_module(f"{__name__}.{method}")
    if method not in METHODS:
        raise OnnxAttrError(
            f"no figure for results of method {method!r} (known: {', '.join([*METHODS, STUDY, CHECK])}); "
            "pass a result written by onnxattr"
        )
    return importlib.import_module(METHODS[method].figure)


def _check_cmap(cmap: str | None) -> None:
    if cmap is not None and cmap not in matplotlib.colormaps:
        raise OnnxAttrError(f"colormap {cmap!r} unknown; use a matplotlib name such as viridis, magma, seismic")


def one_window(ds: xr.Dataset, window: int = 0) -> xr.Dataset:
    """Window ``window`` (an index along the ``window`` dim) of a method result; a study as it is."""
    if ds.attrs.get("method") != "compare" and "window" in ds.dims:
        if not 0 <= window < ds.sizes["window"]:
            raise OnnxAttrError(f"--window {window} does not exist: the result has {ds.sizes['window']} window(s); pass "
                                f"--window 0 to {ds.sizes['window'] - 1}, or leave it out for all")
        return ds.isel(window=window)
    return ds


def _missing(ds: xr.Dataset, err: Exception) -> OnnxAttrError | None:
    """The one-line error for a figure that needs a variable or attr the result lacks (else None)."""
    text = str(err)
    if isinstance(err, AttributeError) and not text.startswith(("'Dataset' object", "'DataArray' object")):
        return None
    quoted = re.findall(r"'([^']+)'", text)
    name = (quoted[-1] if isinstance(err, AttributeError) else quoted[0]) if quoted else text
    return OnnxAttrError(
        f"the {ds.attrs.get('method')} result lacks {name!r}, which its figure needs; pass a complete result written by onnxattr"
    )


def draw(ds: xr.Dataset, style: str = "overview", panels: Sequence[str] | None = None, cmap: str | None = None,
         window: int | None = None) -> Figure:
    """The figure for a result, chosen by its ``method`` attr: of a method result with several windows the
    atlas (``plot.atlas``) unless ``window`` (an index along the ``window`` dim) picks one window's figure; of
    a study, all its figures on one page; of a check report, every method's checks (maps of window ``window``)."""
    _check_cmap(cmap)
    st = style_of(style)
    module = _module(ds)
    with matplotlib.rc_context(st.rc()):
        if ds.attrs.get("method") == CHECK:
            one_window(ds, window or 0)  # refuses a window the report lacks
            return module.draw(ds, st, panels, cmap, window or 0)
        if window is None and ds.attrs.get("method") != "compare" and ds.sizes.get("window", 1) > 1:
            from .atlas import draw as atlas

            return atlas(ds)
        try:
            return module.draw(one_window(ds, window or 0), st, panels, cmap)
        except (KeyError, AttributeError) as err:  # a missing variable (ds["input"], ds.input) or attr
            missing = _missing(ds, err)
            if missing is None:
                raise
            raise missing from None


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = DEFAULT_DPI, style: str = "overview") -> Path:
    """Write a figure atomically (temp file + rename), PNG/PDF/SVG by suffix (PDF and SVG are vector)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise OnnxAttrError(f"figure path {str(path)!r} should end in {', '.join(FORMATS)}")
    with matplotlib.rc_context(style_of(style).rc()):
        return write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", pad_inches=0.02,
                                                              format=path.suffix[1:].lower()), "figure")


def show(
    ds: xr.Dataset,
    path: str | os.PathLike,
    style: str = "overview",
    dpi: int = DEFAULT_DPI,
    panels: Sequence[str] | None = None,
    cmap: str | None = None,
    window: int | None = None,
) -> list[Path]:
    """Draw ``ds`` (``draw``) and save it to ``path``; the files written. A study in the paper style gives one
    column-wide figure per panel (FIG.pdf -> FIG-grid.pdf, FIG-masking.pdf, ...), as ``plot.compare.save_figures``."""
    module = _module(ds)
    if style == "paper" and hasattr(module, "save_figures"):
        _check_cmap(cmap)
        return module.save_figures(ds, path, style=style, dpi=dpi, panels=panels, cmap=cmap)
    return [save_figure(draw(ds, style, panels, cmap, window), path, dpi, style)]


__all__ = ["DEFAULT_DPI", "FORMATS", "STYLES", "draw", "save_figure", "show"]
