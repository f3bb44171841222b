"""``onnxattr glam MODEL IMAGE --window X Y SIZE -o OUT.nc``: GL-AM local and global maps."""

from __future__ import annotations

import click

from ..options import DEFAULT_LAYERS, VARIATIONS
from .common import method_command, objective_options, smooth_options


@method_command(
    "glam", help="GL-AM: local (window) and global attribution maps from per-layer gradients.",
)
@click.option(
    "--layers",
    default=",".join(DEFAULT_LAYERS),
    show_default=True,
    help="Comma-separated ONNX op types whose outputs are explained.",
)
@click.option("--pattern", default=None, help="Regex on node names (fx or ONNX) to narrow the layers.")
@click.option("--variation", type=click.Choice(VARIATIONS), default="abs", show_default=True, help="Variation term of eqs. 2 and 5.")
@objective_options
@smooth_options
def command(inputs, window, frame, progress, layers, pattern, variation, objective, reduce, smooth, noise, smooth_type,
            seed):
    from ..methods.glam import glam

    op_types = [t.strip() for t in layers.split(",") if t.strip()]
    return glam(inputs.model, inputs.image, window, frame=frame, layers=op_types, pattern=pattern, variation=variation,
                objective=objective, reduce=reduce, smooth=smooth, noise=noise, smooth_type=smooth_type, seed=seed,
                hr=inputs.hr)
