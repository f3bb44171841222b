"""Shared CLI pieces: the options every method takes, input preparation, atomic result writing.

The CLI parses and reports; it never computes: every number comes from the Python API.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click
import torch

from ..atomic import check_writable
from ..device import pick_device
from ..errors import OnnxAttrError
from ..image import crop, downscale, read_image
from ..model import SRModel, load_model
from ..results import save
from ..target import FRAMES, Grid
from ..windowfile import check_duplicates, read_windows, rows_for_images


@dataclass
class Inputs:
    """A loaded model, its LR input (1, C, h, w) and, with --hr, the HR reference (1, C, H, W)."""

    model: SRModel
    image: torch.Tensor
    hr: torch.Tensor | None


def _check_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--device is checked when parsed, before any file is read (one-line error for foo, meta, mps, cuda:7)."""
    if value is not None:
        pick_device(value)
    return value


def model_options(f: Callable) -> Callable:
    """--device, --value-range, --no-verify: how to load the model."""
    f = click.option("--no-verify", is_flag=True, help="Skip the onnxruntime check of the conversion.")(f)
    f = click.option(
        "--value-range",
        type=click.Choice(["1", "255"]),
        default="1",
        show_default=True,
        help="255 for models fed 0..255 images (attributions stay w.r.t. the [0, 1] image).",
    )(f)
    f = click.option(
        "--device", default=None, callback=_check_device, help="torch device (cpu, cuda, cuda:1); default: CUDA if present."
    )(f)
    return f


def window_options(f: Callable) -> Callable:
    """--window X Y SIZE (repeatable), --windows FILE, --grid SIZE [--stride S], --frame hr|sr."""
    f = click.option(
        "--frame", type=click.Choice(FRAMES), default="hr", show_default=True,
        help="Frame of --window/--windows/--pixel: hr = HR-image pixels (LR x scale), sr = output pixels.",
    )(f)
    f = click.option("--stride", type=int, default=None, metavar="S", help="Step between --grid windows [default: SIZE].")(f)
    f = click.option("--grid", type=int, default=None, metavar="SIZE", help="Windows of side SIZE tiling the whole output.")(f)
    f = click.option("--windows", "windows_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                     help="CSV of windows: x,y,size[,image] per row.")(f)
    f = click.option(
        "--window", "window", nargs=3, type=int, multiple=True, metavar="X Y SIZE",
        help="Window: column, row, side of the top-left corner (repeatable).",
    )(f)
    return f


def window_spec(
    window: tuple[tuple[int, int, int], ...], windows_file: str | None, grid: int | None, stride: int | None,
    image_path: str | None = None,
) -> list[tuple[int, int, int]] | Grid | None:
    """What --window/--windows/--grid/--stride ask for, as the API's ``window`` argument (None: none given).

    Rows of a windows file with an image column must name ``image_path``."""
    if stride is not None and grid is None:
        raise OnnxAttrError("--stride needs --grid SIZE (the stride steps the grid's windows)")
    if grid is not None:
        if window or windows_file:
            raise OnnxAttrError("--grid tiles the whole output: drop --window/--windows, or drop --grid")
        return Grid(grid, stride)
    spec = [tuple(w) for w in window]
    if windows_file is not None:
        rows = read_windows(windows_file)
        if image_path is not None:
            rows_for_images(rows, [image_path], windows_file, flag="IMAGE")
        else:
            check_duplicates(rows, windows_file)
        spec += [r.window for r in rows]
    return spec or None


def method_options(f: Callable) -> Callable:
    """MODEL IMAGE [--window X Y SIZE ... | --windows FILE | --grid SIZE] [--frame hr|sr] [--hr] [--crop X Y]
    -o OUT.nc plus the model options."""
    f = click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Result .nc file.")(f)
    f = click.option(
        "--crop",
        nargs=2,
        type=int,
        default=None,
        metavar="X Y",
        help="Crop the LR image at column X, row Y to the model's fixed input size.",
    )(f)
    f = click.option("--hr", is_flag=True, help="IMAGE is HR: make the LR input by bicubic downscaling and keep the HR.")(f)
    f = window_options(f)
    f = model_options(f)
    f = click.argument("image", type=click.Path(dir_okay=False))(f)
    f = click.argument("model", type=click.Path(dir_okay=False))(f)
    return f


def check_output_path(out: str | Path, suffixes: tuple[str, ...] = (".nc",)) -> Path:
    """Fail before any computation when the result could not be written: suffix, folder, permissions."""
    out = Path(out)
    if out.suffix not in suffixes:
        raise OnnxAttrError(f"output {str(out)!r} should end in {' or '.join(suffixes)}")
    if out.suffix != ".zarr" and out.is_dir():
        raise OnnxAttrError(f"output {str(out)!r} is a folder; pass a file name such as {out / ('out' + out.suffix)}")
    check_writable(out, "output")
    return out


def load(model_path: str, device: str | None, value_range: str, no_verify: bool) -> SRModel:
    return load_model(model_path, device=device, verify=not no_verify, value_range=float(value_range))


def prepare_inputs(
    model_path: str,
    image_path: str,
    *,
    device: str | None,
    value_range: str,
    no_verify: bool,
    hr: bool,
    crop_at: tuple[int, int] | None,
) -> Inputs:
    """Load the model and the image (LR, or LR made from HR), cropped to a fixed input size if asked."""
    model = load(model_path, device, value_range, no_verify)
    image = read_image(image_path, channels=model.in_channels)
    hr_image = None
    if hr:
        image, hr_image = downscale(image, model.scale)
    if crop_at is not None:
        if model.fixed_size is None:
            raise OnnxAttrError("--crop needs a model with a fixed input size; this one takes any size")
        h, w = model.fixed_size
        image = crop(image, crop_at[0], crop_at[1], h, w)
        if hr_image is not None:
            s = model.scale
            hr_image = crop(hr_image, crop_at[0] * s, crop_at[1] * s, h * s, w * s)
    model.check_input(image)
    return Inputs(model, image, hr_image)


def finish(ds: Any, out: Path) -> None:
    """Write the result atomically and say where it went."""
    save(ds, out)
    click.echo(f"wrote {out}", err=True)


def method_command(name: str, help: str, check: Callable[[dict[str, Any]], object] | None = None) -> Callable:
    """Decorator for a method command: adds the shared options and turns the function into a click command.

    The wrapped function gets ``inputs: Inputs``, the API ``window`` argument (``window_spec``) and ``frame``
    plus its own options and returns the Dataset. ``check(options)`` validates the command's own options
    before the model loads.
    """

    def wrap(f: Callable) -> click.Command:
        @functools.wraps(f)
        def run(model, image, window, windows_file, grid, stride, frame, hr, crop, out, device, value_range, no_verify, **kw):
            out_path = check_output_path(out)
            if check is not None:
                check(kw)
            spec = window_spec(window, windows_file, grid, stride, image)
            inputs = prepare_inputs(
                model, image, device=device, value_range=value_range, no_verify=no_verify, hr=hr, crop_at=crop
            )
            finish(f(inputs, spec, frame=frame, **kw), out_path)

        return click.command(name=name, help=help)(method_options(run))

    return wrap
