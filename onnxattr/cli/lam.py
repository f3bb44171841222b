"""``onnxattr lam MODEL IMAGE --window X Y SIZE [--window ...] -o OUT.nc``: local attribution maps (Gu & Dong 2021)."""

from __future__ import annotations

import click

from ..options import BASELINES, DEFAULT_MEMORY_FRACTION, PATHS
from .common import Inputs, method_command, objective_options, smooth_options


@method_command(
    "lam", help="Local attribution map (LAM) of an output window: path-integrated gradients of the gradient detector.",
)
@click.option("--steps", default=50, show_default=True, type=click.IntRange(min=1), help="Path steps m.")
@click.option("--sigma", default=1.2, show_default=True, type=float, help="Blur of the baseline image.")
@click.option("--kernel-size", default=9, show_default=True, type=click.IntRange(min=1), help="Side of the Gaussian kernel.")
@click.option(
    "--path", "path", default="lam", show_default=True, type=click.Choice(PATHS),
    help="lam: progressive blur; ig_blur / ig_black: straight line from the blurred / black image; i_gradient: the "
    "mean gradient between --baseline and the image times their difference (LAM_Demo saliency_map_I_gradient); "
    "gradient: one pass.",
)
@click.option("--baseline", type=click.Choice(BASELINES), default="gaussian", show_default=True,
              help="Baseline of --path i_gradient: OpenCV's 7x7 Gaussian blur, bilateral filter (15, 90, 90) or 5x5 "
              "median filter (LAM_Demo IG_baseline gaus, bif, mean), LAM's blur (--sigma, --kernel-size; "
              "GaussianLinearPath) or black (LinearPath).")
@objective_options
@smooth_options
@click.option("--receptive-field", is_flag=True,
              help="Add the graph's theoretical receptive field (LAM_Demo calculate_RF, from every op; seconds for a "
              "transformer).")
@click.option("--field-crop/--no-field-crop", default=True, show_default=True,
              help="Where the graph's receptive field is finite (convolutions, no pooling or attention), run the "
              "passes on the crop the window depends on: the same map, 0 outside it, at the crop's cost (attr "
              "field_box).")
@click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Path points per pass [default: from the memory budget].")
@click.option(
    "--memory-fraction", default=DEFAULT_MEMORY_FRACTION, show_default=True, type=click.FloatRange(0, 1, min_open=True),
    help="Share of free RAM (or CUDA memory) the batch may use.",
)
def command(inputs: Inputs, window, frame, progress, steps, sigma, kernel_size, path, baseline, objective, reduce,
            smooth, noise, smooth_type, seed, receptive_field, field_crop, batch_size, memory_fraction):
    from ..methods.lam import lam

    return lam(
        inputs.model, inputs.image, window, frame=frame, steps=steps, sigma=sigma, kernel_size=kernel_size, path=path,
        baseline=baseline, objective=objective, reduce=reduce, smooth=smooth, noise=noise, smooth_type=smooth_type,
        seed=seed, receptive_field=receptive_field, field_crop=field_crop, batch_size=batch_size,
        memory_fraction=memory_fraction, progress=progress, hr=inputs.hr,
    )
