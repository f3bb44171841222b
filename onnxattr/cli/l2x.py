"""``onnxattr l2x MODEL IMAGE --window X Y SIZE -o OUT.nc``: L2X attribution (Yu & Yang)."""

from __future__ import annotations

import click

from ..options import TARGETS, UNKNOWN_OPS
from .common import Inputs, method_command, objective_options


def _params(options: dict) -> dict:
    """The command's options as L2X's parameters: --pixel and --channel as ``pixel``, --float32 as ``dtype``."""
    pixel, channel = options["pixel"], options["channel"]
    return {"sigma": options["sigma"], "kernel_size": options["kernel_size"], "target": options["target"],
            "objective": options["objective"], "reduce": options["reduce"],
            "pixel": (*pixel, *([] if channel is None else [channel])) if pixel else None,
            "unknown_ops": options["unknown_ops"], "dtype": "float32" if options["single"] else "float64"}


@method_command(
    "l2x", help="L2X attribution of an output window: one pass of per-op rules against a blurred reference.",
    check=_params,
)
@click.option("--target", default="detector", show_default=True, type=click.Choice(TARGETS),
              help="detector: the window objective (--objective, LAM's gradient detector by default); sum: window sum; "
              "pixel: one SR value (--pixel).")
@objective_options
@click.option("--pixel", nargs=2, type=int, default=None, metavar="X Y",
              help="Output pixel (column, row; in --frame) for --target pixel.")
@click.option("--channel", type=click.IntRange(min=0), default=None, help="Channel of --pixel [default: sum of channels].")
@click.option("--sigma", default=1.2, show_default=True, type=float, help="Blur of the reference image.")
@click.option("--kernel-size", default=9, show_default=True, type=click.IntRange(min=1), help="Side of the Gaussian kernel.")
@click.option("--unknown-ops", default="error", show_default=True, type=click.Choice(UNKNOWN_OPS),
              help="Ops without a rule: fail, or use their plain gradient (approximate; see completeness_error).")
@click.option("--float32", "single", is_flag=True, help="Propagate in float32 (faster; completeness limited by rounding).")
def command(inputs: Inputs, window, frame, progress, target, objective, reduce, pixel, channel, sigma, kernel_size,
            unknown_ops, single):
    from ..methods.l2x import l2x

    params = _params({"sigma": sigma, "kernel_size": kernel_size, "target": target, "objective": objective,
                      "reduce": reduce, "pixel": pixel, "channel": channel, "unknown_ops": unknown_ops, "single": single})
    return l2x(inputs.model, inputs.image, window, frame=frame, hr=inputs.hr, **params)
