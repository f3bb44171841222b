"""``onnxattr lam MODEL IMAGE --window X Y SIZE [--window ...] -o OUT.nc``: local attribution maps (Gu & Dong 2021)."""

from __future__ import annotations

import click

from ..options import DEFAULT_MEMORY_FRACTION, PATHS
from .common import Inputs, method_command


@method_command(
    "lam", help="Local attribution map (LAM) of an output window: path-integrated gradients of the gradient detector.",
)
@click.option("--steps", default=50, show_default=True, type=click.IntRange(min=1), help="Path steps m.")
@click.option("--sigma", default=1.2, show_default=True, type=float, help="Blur of the baseline image.")
@click.option("--kernel-size", default=9, show_default=True, type=click.IntRange(min=1), help="Side of the Gaussian kernel.")
@click.option(
    "--path", "path", default="lam", show_default=True, type=click.Choice(PATHS),
    help="lam: progressive blur; ig_blur / ig_black: straight line from the blurred / black image; gradient: one pass.",
)
@click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Path points per pass [default: from the memory budget].")
@click.option(
    "--memory-fraction", default=DEFAULT_MEMORY_FRACTION, show_default=True, type=click.FloatRange(0, 1, min_open=True),
    help="Share of free RAM (or CUDA memory) the batch may use.",
)
def command(inputs: Inputs, window, frame, progress, steps, sigma, kernel_size, path, batch_size, memory_fraction):
    from ..methods.lam import lam

    return lam(
        inputs.model, inputs.image, window, frame=frame, steps=steps, sigma=sigma, kernel_size=kernel_size, path=path,
        batch_size=batch_size, memory_fraction=memory_fraction, progress=progress, hr=inputs.hr,
    )
