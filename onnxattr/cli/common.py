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


def model_options(f: Callable) -> Callable:
    """--device, --value-range, --channel-order, --probe-size, --no-verify: how to load the model."""
    f = click.option("--no-verify", is_flag=True, help="Skip the onnxruntime check of the conversion.")(f)
    f = click.option(
        "--probe-size",
        nargs=2,
        type=click.IntRange(min=1),
        default=None,
        metavar="H W",
        help="Input size to start the probe-size search from (models that refuse the default probes).",
    )(f)
    f = click.option(
        "--channel-order",
        type=click.Choice(["rgb", "bgr"]),
        default="rgb",
        show_default=True,
        help="Channel order the file takes and returns (cannot be detected; OpenCV-style exports use bgr).",
    )(f)
    f = click.option(
        "--value-range",
        type=click.Choice(["auto", "1", "255"]),
        default="auto",
        show_default=True,
        help="Units the model is fed: auto (detected on a bundled photo), 1 or 255 (attributions stay w.r.t. the "
        "[0, 1] image).",
    )(f)
    f = click.option("--device", default=None, help="torch device (cpu, cuda, cuda:1); default: CUDA if present.")(f)
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
        help="Crop the LR image at column X, row Y to the model's fixed input size (or, for a model that needs "
        "e.g. even sides, to the largest size it takes).",
    )(f)
    f = click.option("--hr", is_flag=True, help="IMAGE is HR: make the LR input by bicubic downscaling and keep the HR.")(f)
    f = window_options(f)
    f = model_options(f)
    f = click.argument("image", type=click.Path(dir_okay=False))(f)
    f = click.argument("model", type=click.Path(dir_okay=False))(f)
    return f


def check_output_path(out: str | Path, suffixes: tuple[str, ...] = (".nc",)) -> Path:
    """Fail before any computation when the result could not be written."""
    out = Path(out)
    if out.suffix not in suffixes:
        raise OnnxAttrError(f"output {str(out)!r} should end in {' or '.join(suffixes)}")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise OnnxAttrError(f"folder {str(out.parent)!r} for {out.name} does not exist; create it first")
    return out


def _stage_line(line: str) -> None:
    click.echo(line, err=True)


def load(
    model_path: str,
    device: str | None,
    value_range: str,
    no_verify: bool,
    channel_order: str = "rgb",
    probe_size: tuple[int, int] | None = None,
) -> SRModel:
    """load_model with the CLI's options; slow load stages are announced on stderr."""
    return load_model(
        model_path,
        device=device,
        verify=not no_verify,
        value_range=value_range,
        channel_order=channel_order,
        probe_size=tuple(probe_size) if probe_size else None,
        progress=_stage_line,
    )


def prepare_inputs(
    model_path: str,
    image_path: str,
    *,
    device: str | None,
    value_range: str,
    no_verify: bool,
    hr: bool,
    crop_at: tuple[int, int] | None,
    channel_order: str = "rgb",
    probe_size: tuple[int, int] | None = None,
) -> Inputs:
    """Load the model and the image (LR, or LR made from HR), cropped to the model's fixed input size, or to
    the largest size its size rule takes, if asked."""
    model = load(model_path, device, value_range, no_verify, channel_order, probe_size)
    image = read_image(image_path, channels=model.in_channels)
    hr_image = None
    if hr:
        image, hr_image = downscale(image, model.scale)
    if crop_at is not None:
        rule = model.size_rule
        if model.fixed_size is None and rule.multiple == 1:
            raise OnnxAttrError("--crop needs a model with a fixed input size or a multiple-of rule; this one takes any size")
        h, w = rule.fit(image.shape[2] - crop_at[1], image.shape[3] - crop_at[0])
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


def method_command(name: str, help: str) -> Callable:
    """Decorator for a method command: adds the shared options and turns the function into a click command.

    The wrapped function gets ``inputs: Inputs``, the API ``window`` argument (``window_spec``) and ``frame``
    plus its own options and returns the Dataset.
    """

    def wrap(f: Callable) -> click.Command:
        @functools.wraps(f)
        def run(model, image, window, windows_file, grid, stride, frame, hr, crop, out, device, value_range, no_verify,
                channel_order, probe_size, **kw):
            out_path = check_output_path(out)
            spec = window_spec(window, windows_file, grid, stride, image)
            inputs = prepare_inputs(
                model, image, device=device, value_range=value_range, no_verify=no_verify, hr=hr, crop_at=crop,
                channel_order=channel_order, probe_size=probe_size,
            )
            finish(f(inputs, spec, frame=frame, **kw), out_path)

        return click.command(name=name, help=help)(method_options(run))

    return wrap
