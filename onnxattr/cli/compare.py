"""``onnxattr compare MODEL... --images IMG... --window X Y SIZE -o OUT.nc``: one method on every model x image."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..compare import METHODS, compare
from ..errors import OnnxAttrError
from ..metrics import DEFAULT_RATIOS
from .common import check_output_path, finish, model_options, reported

VARIADIC = ("--images",)


class _Command(click.Command):
    """Lets ``--images a.png b.png`` take every value up to the next option (click options take one)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        current = None
        for a in args:
            if a.startswith("-"):
                current = a if a in VARIADIC else None
                if current is None:
                    out.append(a)
            elif current is not None:
                out += [current, a]
            else:
                out.append(a)
        return super().parse_args(ctx, out)


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE strings -> {key: value}, values read as Python literals (numbers, True) or kept as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise OnnxAttrError(f"--param {pair!r}: write KEY=VALUE with a parameter name of the method, e.g. steps=20")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        ratios = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise OnnxAttrError(f"--ratios {text!r}: give fractions separated by commas, e.g. 0.05,0.1,0.2") from None
    if not all(0 <= r <= 1 for r in ratios):
        raise OnnxAttrError(f"--ratios {text!r}: every ratio must lie in [0, 1] (0.05 = 5%)")
    return ratios


@click.command(name="compare", cls=_Command)
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--images", "images", multiple=True, required=True, metavar="IMG...", help="Image files (LR, or HR with --hr).")
@click.option("--window", nargs=3, type=int, required=True, metavar="X Y SIZE", help="Window: column, row, side (HR px).")
@click.option("--method", type=click.Choice(METHODS), default="lam", show_default=True, help="Attribution method.")
@click.option("--hr", is_flag=True, help="The images are HR: each model gets their bicubic downscale; PSNR/SSIM vs HR.")
@click.option("--window-in-sr", is_flag=True, help="The window is in SR pixels of every model (one scale and offset).")
@click.option("--ratios", default=",".join(f"{r:g}" for r in DEFAULT_RATIOS), show_default=True, help="Masking ratios.")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=1), help="Random masking orders.")
@click.option("--cka-debiased", is_flag=True, help="Debiased CKA (unbiased HSIC; needs >= 4 images).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Method parameter, e.g. steps=20 (repeatable).")
@click.option("--scheduler", default=None, metavar="ADDR", help="Dask: 'threads' (default), 'local' (worker processes) or an address.")
@click.option("--figures", default=None, type=click.Path(dir_okay=False), help="Also write the four figures: FIG.png -> FIG-grid.png ...")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Result .nc (or a .zarr study).")
@model_options
@reported
def command(
    models, images, window, method, hr, window_in_sr, ratios, seeds, cka_debiased, params, scheduler, figures, out,
    device, value_range, no_verify, quiet,
) -> dict:
    """Run one attribution method on every MODEL x image; write maps, DI, PSNR/SSIM, masking curves and CKA."""
    from ..plot import FORMATS
    from ..plot.compare import save_figures

    out_path = check_output_path(out, (".nc", ".zarr"))
    fig_path = check_output_path(figures, FORMATS) if figures else None
    ds = compare(
        list(models), list(images), tuple(window), method=method, hr=hr, window_in_hr=not window_in_sr,
        ratios=parse_ratios(ratios), seeds=seeds, cka_debiased=cka_debiased, scheduler=scheduler, device=device,
        value_range=float(value_range), verify=not no_verify, progress=not quiet, **parse_params(params),
    )
    files = finish(ds, out_path)
    if fig_path is not None:
        files += save_figures(ds, fig_path)
    return study_summary(ds, files)


def study_summary(ds: Any, files: list[Path]) -> dict[str, Any]:
    """Per model: mean diffusion index (and PSNR vs HR, completeness error) over the images."""
    per_model = {}
    for model in ds.model.values:
        m = ds.sel(model=model)
        values = {"mean DI": float(m.diffusion_index.mean())}
        if "psnr_y" in ds:
            values["mean PSNR Y (dB)"] = float(m.psnr_y.mean())
        if np.isfinite(m.completeness_error.values).any():
            values["max completeness error"] = float(np.nanmax(m.completeness_error.values))
        per_model[str(model)] = values
    return {
        "command": "compare",
        "method": ds.attrs["attribution_method"],
        "model": f"{ds.sizes['model']} models x {ds.sizes['image']} images",
        "window": [int(ds.attrs[k]) for k in ("window_x", "window_y", "window_size")],
        "per_model": per_model,
        "elapsed_s": float(ds.elapsed_s.sum()),
        "files": [str(p) for p in files],
    }
