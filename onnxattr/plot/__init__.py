"""Figures for results: one module per method, each with ``draw(ds, style, panels, cmap) -> Figure`` (the
method registry names it), ``compare`` for studies, ``combined`` for ``onnxattr.combine`` results; ``show``
dispatches and saves. Importing this package never changes matplotlib's backend: figures are
``matplotlib.figure.Figure`` objects, which save without pyplot (in Jupyter, ``draw(ds)`` displays inline).

``style``: ``overview`` (a screen page) or ``paper`` (a journal column: 3.4 in, or 7.0 in with
``width="double"``; 7 pt text; save as .pdf for a vector figure). A module with ``pages(ds, style, panels,
cmap)`` gives its paper figure as named pages (a study: one per panel, a grid of many models or images split
in order), which ``show`` writes as FIG-NAME.pdf. ``panels``: names of the panels to draw, in order (each
module's ``PANELS``). ``cmap``: a matplotlib colormap for the attribution maps instead of the method's own.
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
from .common import STYLES, Style, save_bbox, style_of

STUDY = "compare"  # the ``method`` attr of a study, drawn by ``plot.compare``
COMBINED = "combined_along"  # the attr of an ``onnxattr.combine`` result, drawn by ``plot.combined``
CHECK = "check"  # the ``method`` attr of a check report (``onnxattr.checks``), drawn by ``plot.check``


def _module(ds: xr.Dataset):
    """The figure module of a result: its method's (``methods.registry``), ``plot.compare`` for a study or
    ``plot.combined`` for combined runs, ``plot.check`` for a check report."""
    method = str(ds.attrs.get("method", ""))
    if method in (STUDY, CHECK):
        return importlib.import_module(f"{__name__}.{method}")
    if COMBINED in ds.attrs:
        return importlib.import_module(f"{__name__}.combined")
    if method not in METHODS:
        raise OnnxAttrError(
            f"no figure for results of method {method!r} (known: {', '.join([*METHODS, STUDY, CHECK])} and combined "
            "runs); "
            "pass a result written by onnxattr"
        )
    return importlib.import_module(METHODS[method].figure)


def _check_cmap(cmap: str | None) -> None:
    if cmap is not None and cmap not in matplotlib.colormaps:
        raise OnnxAttrError(f"colormap {cmap!r} unknown; use a matplotlib name such as viridis, magma, seismic")


def one_window(ds: xr.Dataset, window: int = 0) -> xr.Dataset:
    """Window ``window`` (an index along the ``window`` dim) of a method result or combined runs; a study as it is."""
    if ds.attrs.get("method") != STUDY and "window" in ds.dims:
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


def _guarded(ds: xr.Dataset, make):
    """``make()``, with a missing variable (ds["input"], ds.input) or attr as a one-line error."""
    try:
        return make()
    except (KeyError, AttributeError) as err:
        missing = _missing(ds, err)
        if missing is None:
            raise
        raise missing from None


def _atlas_wanted(ds: xr.Dataset, window: int | None) -> bool:
    """A method result with several windows draws the atlas unless ``window`` picks one."""
    return window is None and ds.attrs.get("method") != STUDY and COMBINED not in ds.attrs and ds.sizes.get("window", 1) > 1


def draw(ds: xr.Dataset, style: str | Style = "overview", panels: Sequence[str] | None = None, cmap: str | None = None,
         window: int | None = None, width: str | None = None) -> Figure:
    """The figure for a result, chosen by its ``method`` attr: of a method result with several windows the
    atlas (the figure module's ``atlas``, else ``plot.atlas``) unless ``window`` (an index along the ``window`` dim)
    picks one window's figure; of a study, all its figures on one page; of combined runs, the runs side by side on
    window ``window`` (default the first); of a check report, every method's checks (maps of window ``window``).
    ``width``: 'single' or 'double' journal columns for the paper style."""
    _check_cmap(cmap)
    st = style_of(style, width)
    module = _module(ds)
    with matplotlib.rc_context(st.rc()):
        if ds.attrs.get("method") == CHECK:
            one_window(ds, window or 0)  # refuses a window the report lacks
            return module.draw(ds, st, panels, cmap, window or 0)
        if _atlas_wanted(ds, window):
            from .atlas import draw as generic

            atlas = getattr(module, "atlas", generic)  # a method's own atlas (ERF: its radii), else the shared one
            return _guarded(ds, lambda: atlas(ds, st))
        return _guarded(ds, lambda: module.draw(one_window(ds, window or 0), st, panels, cmap))


def figures(ds: xr.Dataset, style: str | Style = "overview", panels: Sequence[str] | None = None,
            cmap: str | None = None, window: int | None = None, width: str | None = None) -> list[tuple[str, Figure]]:
    """The figure(s) of a result as (name, Figure) pairs: one unnamed figure (``draw``), or in the paper style the
    pages of a module that splits its figure (``pages``: a study's panels, a grid of many models or images)."""
    _check_cmap(cmap)
    st = style_of(style, width)
    module = _module(ds)
    if st.name == "paper" and hasattr(module, "pages") and not _atlas_wanted(ds, window):
        with matplotlib.rc_context(st.rc()):
            return _guarded(ds, lambda: module.pages(one_window(ds, window or 0), st, panels, cmap))
    return [("", draw(ds, st, panels, cmap, window))]


def draw_several(datasets: Sequence[xr.Dataset], style: str | Style = "overview", cmap: str | None = None,
                 window: int | None = None, width: str | None = None) -> Figure:
    """Several results side by side (``plot.several``: ERFs in a row; two attribution results on one image and
    window with the KDE difference of their areas of interest), window ``window`` (default 0) of each."""
    from .several import draw as several

    _check_cmap(cmap)
    st = style_of(style, width)
    with matplotlib.rc_context(st.rc()):
        return several([one_window(ds, window or 0) for ds in datasets], st, cmap)


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = DEFAULT_DPI, style: str | Style = "overview") -> Path:
    """Write a figure atomically (temp file + rename), PNG/PDF/SVG by suffix (PDF and SVG are vector). A paper
    figure keeps its width exactly (the journal column) and is cropped to its content's height."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise OnnxAttrError(f"figure path {str(path)!r} should end in {', '.join(FORMATS)}")
    st = style_of(style)
    with matplotlib.rc_context(st.rc()):
        box = save_bbox(st)
        return write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches=box, pad_inches=0.02,
                                                              format=path.suffix[1:].lower()), "figure")


def named(path: Path, name: str) -> Path:
    """FIG.pdf for an unnamed figure, FIG-NAME.pdf for a named page."""
    return path.with_name(f"{path.stem}-{name}{path.suffix}") if name else path


def show(
    ds: xr.Dataset | Sequence[xr.Dataset],
    path: str | os.PathLike,
    style: str = "overview",
    dpi: int = DEFAULT_DPI,
    panels: Sequence[str] | None = None,
    cmap: str | None = None,
    window: int | None = None,
    width: str | None = None,
) -> list[Path]:
    """Draw ``ds`` (several results: ``draw_several``) and save it to ``path``; the files written. In the paper style
    a study gives one figure per panel (FIG.pdf -> FIG-grid.pdf, FIG-masking.pdf, ...), and a figure too large for
    the page splits into pages named in order (FIG-grid-1.pdf, FIG-grid-2.pdf); ``width`` 'double' draws paper
    figures two columns wide."""
    st = style_of(style, width)
    if not isinstance(ds, xr.Dataset):
        if len(ds) > 1:
            if panels:
                raise OnnxAttrError("--panels chooses the panels of one result's figure; drop it to draw several results")
            return [save_figure(draw_several(ds, st, cmap, window), path, dpi, st)]
        ds = ds[0]
    return [save_figure(fig, named(Path(path), name), dpi, st)
            for name, fig in figures(ds, st, panels, cmap, window)]


__all__ = ["DEFAULT_DPI", "FORMATS", "STYLES", "draw", "draw_several", "figures", "save_figure", "show"]
