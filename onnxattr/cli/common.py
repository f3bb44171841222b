"""Shared CLI pieces: the options every method takes, input preparation, atomic result writing, and
the report after a run (``reported``: a summary on stderr, ``--json`` on stdout, ``--quiet``).

The CLI parses and reports; it never computes: every number comes from the Python API.
"""

from __future__ import annotations

import functools
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from ..errors import OnnxAttrError
from ..methods.registry import METHODS, SHARED_CHECKS
from ..options import FRAMES, OBJECTIVES, REDUCTIONS, SMOOTH_TYPES
from ..paths import check_writable
from ..windows.csvfile import check_duplicates, read_windows, rows_for_images

if TYPE_CHECKING:  # torch, onnx and onnxruntime load when a command runs, not when it parses (fast --help)
    import torch

    from ..intake import SRModel
    from ..windows.geometry import Grid


class ImagesCommand(click.Command):
    """Lets ``--images a.png b.png`` take every value up to the next option (click options take one)."""

    variadic = ("--images",)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        current = None
        for a in args:
            if a.startswith("-"):
                current = a if a in self.variadic else None
                if current is None:
                    out.append(a)
            elif current is not None:
                out += [current, a]
            else:
                out.append(a)
        return super().parse_args(ctx, out)


@dataclass
class Inputs:
    """A loaded model, its LR input (1, C, h, w) and, with --hr, the HR reference (1, C, H, W)."""

    model: SRModel
    image: torch.Tensor
    hr: torch.Tensor | None


def _check_device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--device is checked when parsed, before any file is read (one-line error for foo, meta, mps, cuda:7)."""
    if value is not None:
        from ..device import pick_device

        pick_device(value)
    return value


def model_options(f: Callable) -> Callable:
    """--device, --threads, --value-range, --channel-order, --probe-size, --no-verify: how to load and run the model."""
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
        type=click.Choice(["auto", "rgb", "bgr"]),
        default="auto",
        show_default=True,
        help="Channel order the file takes and returns: auto (BGR at an end whose graph reverses the channel axis, as "
        "pre-processing pipelines do, else RGB); bgr for OpenCV-style exports the graph does not tell.",
    )(f)
    f = click.option(
        "--value-range",
        type=click.Choice(["auto", "1", "255"]),
        default="auto",
        show_default=True,
        help="Units the model is fed: auto (detected on a bundled photo), 1 or 255 (attributions stay w.r.t. the "
        "[0, 1] image).",
    )(f)
    f = click.option(
        "--threads", type=click.IntRange(min=1), default=None, metavar="N",
        help="CPU threads for torch and onnxruntime [default: one per core; compare: 1 per task, tasks side by side].",
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


def objective_options(f: Callable) -> Callable:
    """--objective grad|intensity|gabor, --reduce sum|mean: the window's objective D (LAM_Demo attr_grad, attr_id,
    attr_gabor and its reduce)."""
    f = click.option("--reduce", type=click.Choice(REDUCTIONS), default="sum", show_default=True,
                     help="Reduce the window by its sum or mean (LAM_Demo reduce_func).")(f)
    return click.option(
        "--objective", type=click.Choice(OBJECTIVES), default="grad", show_default=True,
        help="D on the window: grad = LAM's gradient detector (attr_grad), intensity = the output (attr_id), gabor = "
        "the 21-px Gabor response centred on each window pixel (attr_gabor).")(f)


def smooth_options(f: Callable) -> Callable:
    """--smooth N --noise SIGMA [--smooth-type] [--seed]: SmoothGrad / VarGrad over noisy copies of the input."""
    f = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise of --smooth.")(f)
    f = click.option("--smooth-type", type=click.Choice(SMOOTH_TYPES), default="smoothgrad", show_default=True,
                     help="Combine the copies' maps: mean (SmoothGrad), mean of squares, or variance (VarGrad).")(f)
    f = click.option("--noise", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="SIGMA",
                     help="Standard deviation of the Gaussian noise of --smooth, in [0, 1] image units (e.g. 0.1).")(f)
    return click.option("--smooth", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
                        help="SmoothGrad: the map averaged over N noisy copies of the input (with --noise).")(f)


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
        from ..windows.geometry import Grid

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
    f = click.option("--label", default=None, metavar="NAME",
                     help="The model's name in figures [default: the file name without .onnx].")(f)
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


def stage_line(line: str) -> None:
    click.echo(line, err=True)


def load(
    model_path: str,
    device: str | None,
    value_range: str,
    no_verify: bool,
    channel_order: str = "auto",
    probe_size: tuple[int, int] | None = None,
    threads: int | None = None,
    forward_only: bool = False,
) -> SRModel:
    """load_model with the CLI's options (threads set first); slow load stages are announced on stderr."""
    from ..device import set_threads
    from ..intake import load_model

    set_threads(threads)
    return load_model(
        model_path,
        device=device,
        verify=not no_verify,
        value_range=value_range,
        channel_order=channel_order,
        probe_size=tuple(probe_size) if probe_size else None,
        progress=stage_line,
        forward_only=forward_only,
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
    channel_order: str = "auto",
    probe_size: tuple[int, int] | None = None,
    threads: int | None = None,
    forward_only: bool = False,
) -> Inputs:
    """Load the model (``forward_only``: see ``load_model``) and the image (LR, or LR made from HR), cropped to the
    model's fixed input size, or to the largest size its size rule takes, if asked."""
    from ..image import crop, downscale, hr_warnings, read_image

    model = load(model_path, device, value_range, no_verify, channel_order, probe_size, threads, forward_only)
    image = read_image(image_path, channels=model.in_channels)
    given = f"{image.shape[3]}x{image.shape[2]}"
    hr_image = None
    if hr:
        if model.fixed_size and tuple(image.shape[2:]) == model.fixed_size and crop_at is None:
            raise OnnxAttrError(
                f"{Path(image_path).name} is {given}, the size of {model.path.name}'s LR input: it looks like an LR "
                f"image, and --hr would downscale it x{model.scale}; drop --hr, or pass its HR image "
                f"({image.shape[3] * model.scale}x{image.shape[2] * model.scale})")
        hr_warnings(image_path, image.shape[2], image.shape[3], [model.scale])
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
    rule = model.size_rule
    if hr and not model.fixed_size and min(image.shape[2:]) < rule.min_side:
        (h, w), s = image.shape[2:], model.scale
        raise OnnxAttrError(
            f"{model.path.name} needs LR sides of at least {rule.min_side}; with --hr the {given} image is "
            f"downscaled x{s} to {w}x{h}: pass an HR image with sides of at least {rule.min_side * s}"
        )
    model.check_input(image)
    return Inputs(model, image, hr_image)


# ---------------------------------------------------------------- the report after a run
def reported(f: Callable) -> Callable:
    """Adds ``--json`` and ``--quiet`` to a command whose function returns a summary dict.

    The summary is printed as one JSON object on stdout with ``--json``, else as a few lines on stderr
    (none with ``--quiet``, which also hides progress bars and warnings). A ``report`` key holds text
    that belongs on stdout (``inspect``'s table), or a function of ``command_s`` that gives it. ``command_s``:
    the command's wall time.
    """

    @functools.wraps(f)
    def run(*args: Any, as_json: bool, quiet: bool, **kw: Any) -> None:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            summary = f(*args, quiet=quiet, **kw)
        summary["command_s"] = round(time.perf_counter() - t0, 3)
        report = summary.pop("report", None)
        if callable(report):
            report = report(summary["command_s"])
        if as_json:
            click.echo(json.dumps(_jsonable(summary), indent=2))
            return
        if report is not None:
            click.echo(report)
        elif not quiet:
            click.echo(summary_text(summary), err=True)

    run = click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but errors: no progress, summary or warnings.")(run)
    return click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON object on stdout.")(run)


def _jsonable(v: Any) -> Any:
    """NaN -> null, numpy scalars and tuples -> plain JSON values."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def _number(v: Any) -> str:
    if isinstance(v, float) and v == math.inf:
        return "unbounded"
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"


def _values(v: Any) -> str:
    """One number, or the range of a per-window list."""
    if not isinstance(v, list):
        return _number(v)
    finite = [x for x in v if isinstance(x, (int, float)) and math.isfinite(x)]
    return f"{_number(min(finite))} .. {_number(max(finite))} over {len(v)} windows" if finite else "n/a"


def summary_text(summary: dict[str, Any]) -> str:
    """The stderr lines: what ran, the method's checks, times and batch size, files written."""
    lines = []
    if "model" in summary:
        windows = summary.get("windows") or ([summary["window"]] if summary.get("window") else [])
        where = "" if "per_model" in summary else (  # a study's line counts its windows itself
            f", window {tuple(windows[0])} (HR px)" if len(windows) == 1 else f", {len(windows)} windows" if windows else "")
        named = f" ({summary['label']})" if summary.get("label") not in (None, str(summary["model"]).removesuffix(".onnx")) else ""
        lines.append(f"{summary['command']}: {summary['model']}{named}{where}")
    checks = summary.get("checks") or {}
    if checks:
        lines.append("  " + " | ".join(f"{label} {_values(v)}" for label, v in checks.items()))
    for model, values in (summary.get("per_model") or {}).items():
        lines.append(f"  {model}: " + " | ".join(f"{label} {_number(v)}" for label, v in values.items()))
    lines += [f"  {line}" for line in summary.get("lines", [])]
    timing = []
    if "elapsed_s" in summary:
        timing.append(f"method {summary['elapsed_s']:.2f} s")
    if "task_s" in summary:
        kept = summary.get("cells_kept")
        timing.append(f"method {summary['task_s']:.2f} s summed over {summary['tasks']} model x image tasks (side by "
                      "side, so the sum can exceed the wall time" + (f"; cells kept from earlier runs count their "
                                                                      f"own time: {kept})" if kept else ")"))
    if summary.get("batch_size") is not None:
        timing.append(f"batch size {summary['batch_size']}")
    if summary.get("field_box"):
        x0, y0, x1, y1 = summary["field_box"]
        timing.append(f"passes on the window's field, LR x {x0}-{x1} y {y0}-{y1} ({x1 - x0}x{y1 - y0})")
    timing.append(f"command {summary['command_s']:.2f} s wall")
    lines.append("  " + ", ".join(timing))
    lines += [f"  wrote {p}" for p in summary.get("files", [])]
    return "\n".join(lines)


def result_summary(ds: Any, command: str, files: list[Path]) -> dict[str, Any]:
    """The summary of one method's result: its checks (the registry's ``checks``; per-window ones as one value
    per window), the windows (HR frame), time, batch size, LAM's field crop, files."""
    a = ds.attrs
    method = str(a.get("method", command))
    checks: dict[str, Any] = {}
    for name, label in {**SHARED_CHECKS, **(METHODS[method].checks if method in METHODS else {})}.items():
        if name in ds.data_vars:
            values = [float(v) for v in ds[name].values.reshape(-1)]
            checks[label] = values[0] if len(values) == 1 else values
        elif name in a:
            checks[label] = a[name]
    windows = None
    if "window_size" in ds.coords:
        windows = [[float(ds.window_x[k]), float(ds.window_y[k]), int(ds.window_size[k])] for k in range(ds.sizes["window"])]
        windows = [[int(v) if float(v).is_integer() else v for v in w] for w in windows]
    summary: dict[str, Any] = {
        "command": command,
        "method": method,
        "model": a.get("model_file"),
        "label": a.get("model_label"),
        "windows": windows,
        "window_frame": "hr" if windows else None,
        "checks": checks,
        "elapsed_s": float(a["elapsed_s"]) if "elapsed_s" in a else None,
        "batch_size": a.get("batch_size"),
        "field_box": [int(v) for v in a["field_box"]] if "field_box" in a else None,
        "files": [str(p) for p in files],
    }
    return {k: v for k, v in summary.items() if v is not None}


def finish(ds: Any, out: Path) -> list[Path]:
    """Write the result atomically; the files written."""
    from ..results.files import save

    return [save(ds, out)]


def check_label(label: str | None) -> None:
    """Refuse an empty --label before any work."""
    if label is not None and not label.strip():
        raise OnnxAttrError("--label is empty; give the model a name, or leave --label out")


def method_command(name: str, help: str, check: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Callable:
    """Decorator for the command of the registered method ``name``: adds the shared options and turns the function
    into a click command.

    The wrapped function gets ``inputs: Inputs``, the API ``window`` argument (``window_spec``), ``frame``
    and ``progress`` (False with ``--quiet``) plus its own options and returns the Dataset; the command
    writes it and reports (``reported``). The command's own options are checked before the model loads by the
    method's ``check_params``, after ``check(options)`` maps them onto the method's parameters (default: as they are).
    """

    def wrap(f: Callable) -> click.Command:
        @functools.wraps(f)
        def run(model, image, window, windows_file, grid, stride, frame, hr, label, crop, out, device, threads,
                value_range, no_verify, channel_order, probe_size, quiet, **kw):
            out_path = check_output_path(out)
            check_label(label)
            m = METHODS[name]
            m.check_params(**(check(kw) if check is not None else kw))
            if m.needs_hr and not hr:
                raise OnnxAttrError(f"{name} measures against the HR image: pass IMAGE as the HR image with --hr (the "
                                    "LR input is then its bicubic downscale by the model's scale)")
            spec = window_spec(window, windows_file, grid, stride, image)
            inputs = prepare_inputs(
                model, image, device=device, value_range=value_range, no_verify=no_verify, hr=hr, crop_at=crop,
                channel_order=channel_order, probe_size=probe_size, threads=threads, forward_only=m.forward_only,
            )
            ds = f(inputs, spec, frame=frame, progress=not quiet, **kw)
            if label is not None:
                ds.attrs["model_label"] = label
            return result_summary(ds, name, finish(ds, out_path))

        return click.command(name=name, help=help)(method_options(reported(run)))

    return wrap
