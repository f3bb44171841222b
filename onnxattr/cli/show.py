"""``onnxattr show RESULT... -o FIG.png``: the method's figure (a result .nc or a .zarr study), or several results
side by side (ERFs; two attribution maps of one image and window with the difference of their areas of interest)."""

from __future__ import annotations

import click

from ..options import DEFAULT_DPI, FORMATS, STYLE_NAMES, WIDTHS
from .common import check_output_path, reported


@click.command(name="show")
@click.argument("results", nargs=-1, required=True, type=click.Path(), metavar="RESULT")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="Figure file (.png, or .pdf/.svg for a vector figure).")
@click.option("--style", type=click.Choice(STYLE_NAMES), default="overview", show_default=True,
              help="overview: a screen page; paper: a journal column (3.4 in, 7 pt; a study gives one file per figure, "
              "a figure taller than a page splits into files named in order).")
@click.option("--width", type=click.Choice(WIDTHS), default=None,
              help="Paper figures: one journal column (single, 3.4 in, the default) or two (double, 7.0 in).")
@click.option("--dpi", default=DEFAULT_DPI, show_default=True, type=click.IntRange(min=10, max=2400),
              help="Resolution of PNG output (10 to 2400).")
@click.option("--panels", default=None, metavar="A,B,...", help="Panels to draw, in order (e.g. input,saliency,sr; grid,cka for a study).")
@click.option("--cmap", default=None, help="matplotlib colormap for the attribution maps (default: the method's own).")
@click.option("--window", "window", type=click.IntRange(min=0), default=None, metavar="K",
              help="Draw window K's figure (0-based) of a many-window result [default: the atlas; of several results: "
              "window 0].")
@reported
def command(results, out, style, width, dpi, panels, cmap, window, quiet) -> dict:
    """Draw the figure for a result written by onnxattr (the atlas for several windows; combined runs side by side),
    or several results side by side (ERFs of several models; two attribution results on the same image and window
    with their KDE difference)."""
    from ..plot import show
    from ..results.files import load

    path = check_output_path(out, FORMATS)
    datasets = [load(r) for r in results]
    names = [p.strip() for p in panels.split(",") if p.strip()] if panels else None
    files = show(datasets, path, style=style, dpi=dpi, panels=names, cmap=cmap, window=window, width=width)
    methods = sorted({"combined" if "combined_along" in ds.attrs else str(ds.attrs.get("method")) for ds in datasets})
    return {"command": "show", "method": ", ".join(methods), "style": style, "width": width or "single",
            "files": [str(p) for p in files]}
