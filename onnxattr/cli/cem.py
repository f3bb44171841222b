"""``onnxattr cem MODEL HR_IMAGE --hr --window X Y SIZE -o OUT.nc``: causal effect maps (Hu et al., TPAMI 2025)."""

from __future__ import annotations

import click

from ..options import DEFAULT_MEMORY_FRACTION
from .common import Inputs, method_command


@method_command(
    "cem", help="Causal effect map (CEM) of an output window: the change of its PSNR against the HR image when "
    "input blocks are replaced by natural-image patches (forward passes only: onnxruntime on the file, or the torch "
    "graph on CUDA when onnxruntime has no CUDA provider).",
)
@click.option("--block", default=8, show_default=True, type=int, help="Block side b in HR px (a multiple of the scale).")
@click.option("--coarse", default=3, show_default=True, type=int, help="Coarse draws K_c on every block.")
@click.option("--fine", default=50, show_default=True, type=int, help="Fine draws K_f where a coarse draw moved the PSNR by >= tol.")
@click.option("--tol", default=0.01, show_default=True, type=float, help="dB: the fine-stage threshold; smaller effects are 0.")
@click.option("--patches", default=None, type=click.Path(), metavar="DIR",
              help="Folder of patch images (e.g. DIV2K 8x8 PNGs) [default: cut from the bundled photos].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the patch pool and every draw.")
@click.option("--field", default="auto", show_default=True, type=click.Choice(["auto", "full"]),
              help="auto: measure the receptive field (blocks outside it are 0; forwards on crops); full: every block, whole image.")
@click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Interventions per forward [default: from the memory law].")
@click.option(
    "--memory-fraction", default=DEFAULT_MEMORY_FRACTION, show_default=True, type=click.FloatRange(0, 1, min_open=True),
    help="Share of free RAM (or CUDA memory) a batch may use.",
)
def command(inputs: Inputs, window, frame, progress, block, coarse, fine, tol, patches, seed, field, batch_size,
            memory_fraction):
    from ..methods.cem import cem

    return cem(
        inputs.model, inputs.image, window, frame=frame, block=block, coarse=coarse, fine=fine, tol=tol, patches=patches,
        seed=seed, field=field, batch_size=batch_size, memory_fraction=memory_fraction,
        progress=progress, hr=inputs.hr,
    )
