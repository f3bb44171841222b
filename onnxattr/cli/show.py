"""``onnxattr show RESULT.nc -o FIG.png``: the method's figure."""

from __future__ import annotations

import click

from ..plot import FORMATS, show
from ..results import load
from .common import check_output_path


@click.command(name="show")
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Figure file (.png/.pdf/.svg).")
@click.option("--window", "window", type=click.IntRange(min=0), default=None, metavar="K",
              help="Draw window K's figure (0-based) of a many-window result [default: the atlas].")
def command(result, out, window) -> None:
    """Draw the figure for a result file written by onnxattr (the atlas for several windows)."""
    path = check_output_path(out, FORMATS)
    show(load(result), path, window)
    click.echo(f"wrote {path}", err=True)
